/**
 * How Ollama itself reads each of these names, recorded by running Ollama's own parsers
 * (types/model/name.go, internal/modelref/modelref.go at the referenced commit) on them:
 * `request` = ParseRef then ParseName(base) (chat, generate, embed, show, /v1), `pull` =
 * NormalizePullName then ParseName (pull, delete), `literal` = ParseName (copy, push, create's
 * name, listings). Each is Name.String() when Name.IsValid(), else absent (Ollama refuses it).
 * `requestCloud`: ParseRef found an explicit cloud source.
 */
export interface OllamaReading { in: string, request?: string, requestCloud?: boolean, pull?: string, literal?: string }

export const ollamaReadings: OllamaReading[] = [
  { in: 'llama3.2@x://registry.ollama.ai/library/other', literal: 'registry.ollama.ai/library/other:latest', pull: 'registry.ollama.ai/library/other:latest', request: 'registry.ollama.ai/library/other:latest', requestCloud: false },
  { in: 'llama3.2@sha256:abc' },
  { in: 'llama3.2:latest@sha256:0123' },
  { in: '@sha256:abc' },
  { in: 'llama3.2@latest' },
  { in: 'https://registry.ollama.ai/library/llama3.2:latest', literal: 'registry.ollama.ai/library/llama3.2:latest', pull: 'registry.ollama.ai/library/llama3.2:latest', request: 'registry.ollama.ai/library/llama3.2:latest', requestCloud: false },
  { in: 'http://registry.ollama.ai/library/llama3.2', literal: 'registry.ollama.ai/library/llama3.2:latest', pull: 'registry.ollama.ai/library/llama3.2:latest', request: 'registry.ollama.ai/library/llama3.2:latest', requestCloud: false },
  { in: 'x://registry.ollama.ai/library/llama3.2', literal: 'registry.ollama.ai/library/llama3.2:latest', pull: 'registry.ollama.ai/library/llama3.2:latest', request: 'registry.ollama.ai/library/llama3.2:latest', requestCloud: false },
  { in: 'https://evil.example/library/llama3.2', literal: 'evil.example/library/llama3.2:latest', pull: 'evil.example/library/llama3.2:latest', request: 'evil.example/library/llama3.2:latest', requestCloud: false },
  { in: 'registry.ollama.ai:443/library/llama3.2', literal: 'registry.ollama.ai:443/library/llama3.2:latest', pull: 'registry.ollama.ai:443/library/llama3.2:latest', request: 'registry.ollama.ai:443/library/llama3.2:latest', requestCloud: false },
  { in: 'localhost:5000/team/model:v1', literal: 'localhost:5000/team/model:v1', pull: 'localhost:5000/team/model:v1', request: 'localhost:5000/team/model:v1', requestCloud: false },
  { in: 'localhost:5000/model' },
  { in: 'localhost:5000/library/llama3.2', literal: 'localhost:5000/library/llama3.2:latest', pull: 'localhost:5000/library/llama3.2:latest', request: 'localhost:5000/library/llama3.2:latest', requestCloud: false },
  { in: 'localhost:5000/library/llama3.2:cloud', literal: 'localhost:5000/library/llama3.2:cloud', pull: 'localhost:5000/library/llama3.2:cloud', request: 'localhost:5000/library/llama3.2:latest', requestCloud: true },
  { in: 'LLAMA3.2', literal: 'registry.ollama.ai/library/LLAMA3.2:latest', pull: 'registry.ollama.ai/library/LLAMA3.2:latest', request: 'registry.ollama.ai/library/LLAMA3.2:latest', requestCloud: false },
  { in: 'Llama3.2:LATEST', literal: 'registry.ollama.ai/library/Llama3.2:LATEST', pull: 'registry.ollama.ai/library/Llama3.2:LATEST', request: 'registry.ollama.ai/library/Llama3.2:LATEST', requestCloud: false },
  { in: 'REGISTRY.OLLAMA.AI/Library/Llama3.2', literal: 'REGISTRY.OLLAMA.AI/Library/Llama3.2:latest', pull: 'REGISTRY.OLLAMA.AI/Library/Llama3.2:latest', request: 'REGISTRY.OLLAMA.AI/Library/Llama3.2:latest', requestCloud: false },
  { in: 'library/llama3.2', literal: 'registry.ollama.ai/library/llama3.2:latest', pull: 'registry.ollama.ai/library/llama3.2:latest', request: 'registry.ollama.ai/library/llama3.2:latest', requestCloud: false },
  { in: 'alice/private', literal: 'registry.ollama.ai/alice/private:latest', pull: 'registry.ollama.ai/alice/private:latest', request: 'registry.ollama.ai/alice/private:latest', requestCloud: false },
  { in: 'hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M', literal: 'hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M', pull: 'hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M', request: 'hf.co/bartowski/Qwen3-8B-GGUF:Q4_K_M', requestCloud: false },
  { in: 'llama3.2:local', literal: 'registry.ollama.ai/library/llama3.2:local', pull: 'registry.ollama.ai/library/llama3.2:latest', request: 'registry.ollama.ai/library/llama3.2:latest', requestCloud: false },
  { in: 'llama3.2:LOCAL', literal: 'registry.ollama.ai/library/llama3.2:LOCAL', pull: 'registry.ollama.ai/library/llama3.2:latest', request: 'registry.ollama.ai/library/llama3.2:latest', requestCloud: false },
  { in: 'llama3.2:1b:local', pull: 'registry.ollama.ai/library/llama3.2:1b', request: 'registry.ollama.ai/library/llama3.2:1b', requestCloud: false },
  { in: 'llama3.2: local', pull: 'registry.ollama.ai/library/llama3.2:latest', request: 'registry.ollama.ai/library/llama3.2:latest', requestCloud: false },
  { in: 'llama3.2:local:local' },
  { in: 'llama3.2:cloud', literal: 'registry.ollama.ai/library/llama3.2:cloud', pull: 'registry.ollama.ai/library/llama3.2:cloud', request: 'registry.ollama.ai/library/llama3.2:latest', requestCloud: true },
  { in: 'llama3.2:Cloud', literal: 'registry.ollama.ai/library/llama3.2:Cloud', pull: 'registry.ollama.ai/library/llama3.2:cloud', request: 'registry.ollama.ai/library/llama3.2:latest', requestCloud: true },
  { in: 'gpt-oss:20b:cloud', pull: 'registry.ollama.ai/library/gpt-oss:20b-cloud', request: 'registry.ollama.ai/library/gpt-oss:20b', requestCloud: true },
  { in: 'gpt-oss:20b-cloud', literal: 'registry.ollama.ai/library/gpt-oss:20b-cloud', pull: 'registry.ollama.ai/library/gpt-oss:20b-cloud', request: 'registry.ollama.ai/library/gpt-oss:20b', requestCloud: true },
  { in: 'GPT-OSS:20B-Cloud', literal: 'registry.ollama.ai/library/GPT-OSS:20B-Cloud', pull: 'registry.ollama.ai/library/GPT-OSS:20B-cloud', request: 'registry.ollama.ai/library/GPT-OSS:20B', requestCloud: true },
  { in: 'gpt-oss:20b:local:cloud' },
  { in: 'gpt-oss:cloud:local' },
  { in: 'gpt-oss: 20b-cloud', pull: 'registry.ollama.ai/library/gpt-oss:20b-cloud', request: 'registry.ollama.ai/library/gpt-oss:20b', requestCloud: true },
  { in: 'gpt-oss:latest-cloud', literal: 'registry.ollama.ai/library/gpt-oss:latest-cloud', pull: 'registry.ollama.ai/library/gpt-oss:latest-cloud', request: 'registry.ollama.ai/library/gpt-oss:latest', requestCloud: true },
  { in: ' llama3.2 ', pull: 'registry.ollama.ai/library/llama3.2:latest', request: 'registry.ollama.ai/library/llama3.2:latest', requestCloud: false },
  { in: '\u0085llama3.2', pull: 'registry.ollama.ai/library/llama3.2:latest', request: 'registry.ollama.ai/library/llama3.2:latest', requestCloud: false },
  { in: '\ufeffllama3.2' },
  { in: 'llama3.2\n', pull: 'registry.ollama.ai/library/llama3.2:latest', request: 'registry.ollama.ai/library/llama3.2:latest', requestCloud: false },
  { in: 'llama3.2\u0000' },
  { in: 'a/b/c/d' },
  { in: 'llama3.2/' },
  { in: '/llama3.2' },
  { in: 'llama3.2:' },
  { in: ':latest' },
  { in: 'llama3.2:1b/x' },
  { in: 'host/ns/m:t:u' },
  { in: '..' },
  { in: 'ns.x/m' },
  { in: 'llama3.\u212a' },
  { in: '\u212ai' },
  { in: 'llama3.2:latest#x' },
  { in: 'my-cloud-model', literal: 'registry.ollama.ai/library/my-cloud-model:latest', pull: 'registry.ollama.ai/library/my-cloud-model:latest', request: 'registry.ollama.ai/library/my-cloud-model:latest', requestCloud: false },
  { in: 'foo:bar-cloud/baz' },
  { in: 'llama3.2-cloud', literal: 'registry.ollama.ai/library/llama3.2-cloud:latest', pull: 'registry.ollama.ai/library/llama3.2-cloud:latest', request: 'registry.ollama.ai/library/llama3.2-cloud:latest', requestCloud: false },
  { in: 'llama3.2-cloud:latest', literal: 'registry.ollama.ai/library/llama3.2-cloud:latest', pull: 'registry.ollama.ai/library/llama3.2-cloud:latest', request: 'registry.ollama.ai/library/llama3.2-cloud:latest', requestCloud: false },
  { in: 'cloud', literal: 'registry.ollama.ai/library/cloud:latest', pull: 'registry.ollama.ai/library/cloud:latest', request: 'registry.ollama.ai/library/cloud:latest', requestCloud: false },
  { in: 'local', literal: 'registry.ollama.ai/library/local:latest', pull: 'registry.ollama.ai/library/local:latest', request: 'registry.ollama.ai/library/local:latest', requestCloud: false }
]
