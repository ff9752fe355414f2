import { Type, type TSchema } from 'typebox'
import { goStruct } from '../plugins/http/go-json.js'

// Each JSON route names the Go struct Ollama decodes its body into (`goStructs`), and the proxy
// validates and reads the Go view of the body (plugins/http/go-json.ts), never JSON.parse's.
// Schemas check only fields the proxy acts on or that Ollama itself refuses the same way, and
// never more strictly than Ollama: a `null` is what Go makes of it (absent), a missing field is
// Go's zero value. They stay open and carry no defaults; the original bytes are forwarded.

/**
 * Fields of Ollama's request structs the proxy reads, in struct order (api/types.go,
 * openai/openai.go, openai/responses.go, anthropic/anthropic.go); a route's handler or middleware
 * decodes its body into the struct named in the comment.
 */
export const goStructs = {
  // keep_alive is a *Duration (null = absent), options a map[string]any (a second object would merge): plugins/limits/caps.ts.
  /** api.GenerateRequest */
  generate: goStruct({ model: 'string', prompt: 'string', system: 'string', keep_alive: 'value', options: 'merging' }),
  /** api.ChatRequest */
  chat: goStruct({ model: 'string', messages: 'merging', keep_alive: 'value', options: 'merging' }),
  /** api.EmbedRequest */
  embed: goStruct({ model: 'string', input: 'value', keep_alive: 'value', options: 'merging' }),
  /** api.EmbeddingRequest */
  embeddings: goStruct({ model: 'string', prompt: 'string', keep_alive: 'value', options: 'merging' }),
  /** api.ShowRequest; ShowHandler takes model, else name. */
  show: goStruct({ model: 'string', name: 'string' }),
  /** api.PullRequest and api.PushRequest; the handlers take cmp.Or(model, name). */
  pullOrPush: goStruct({ model: 'string', stream: 'value', name: 'string' }),
  /** api.CreateRequest; CreateHandler takes cmp.Or(model, name), builds on `from`, runs it on `remote_host` if set. */
  create: goStruct({ model: 'string', stream: 'value', from: 'string', remote_host: 'string', name: 'string' }),
  /** api.DeleteRequest; DeleteHandler takes cmp.Or(model, name). */
  delete: goStruct({ model: 'string', name: 'string' }),
  /** api.CopyRequest */
  copy: goStruct({ source: 'string', destination: 'string' }),
  /** openai.ChatCompletionRequest (middleware.ChatMiddleware) */
  openAiChat: goStruct({ model: 'string', messages: 'merging' }),
  /** openai.CompletionRequest (middleware.CompletionsMiddleware) */
  openAiCompletion: goStruct({ model: 'string', prompt: 'string' }),
  /** openai.EmbedRequest (middleware.EmbeddingsMiddleware) */
  openAiEmbeddings: goStruct({ input: 'value', model: 'string' }),
  /** openai.ResponsesRequest (middleware.ResponsesMiddleware) */
  openAiResponses: goStruct({ model: 'string', input: 'value', instructions: 'string' }),
  /** anthropic.MessagesRequest (middleware.AnthropicMessagesMiddleware) */
  anthropicMessages: goStruct({ model: 'string', max_tokens: 'int', messages: 'merging', system: 'value' }),
  /** Handlers that decode no struct (they read the raw body or none): the proxy reads nothing. */
  none: goStruct({})
}

const NonEmpty = Type.String({ minLength: 1 })
const Text = Type.Optional(Type.String())
/** Go decodes each element into a struct: an object, or null (left at its zero value). */
const Messages = (options: { minItems?: number } = {}) => Type.Array(Type.Union([Type.Object({}), Type.Null()]), options)
const StringOrStrings = Type.Union([Type.String(), Type.Array(Type.String())])

/**
 * `cmp.Or(model, name)`: either may be empty or absent (Ollama's Go client sends `"name":""`
 * beside `model`), but one must name a model; with neither Ollama answers 400 too.
 */
function modelOrName (properties: Record<string, TSchema> = {}): TSchema {
  return Type.Object(
    { model: Text, name: Text, ...properties },
    { anyOf: [{ required: ['model'], properties: { model: { type: 'string', minLength: 1 } } }, { required: ['name'], properties: { name: { type: 'string', minLength: 1 } } }] }
  )
}

export const schemas = {
  generate: Type.Object({ model: NonEmpty, prompt: Text }),
  chat: Type.Object({ model: NonEmpty, messages: Type.Optional(Messages()) }),
  embed: Type.Object({ model: NonEmpty, input: Type.Optional(StringOrStrings) }),
  embeddings: Type.Object({ model: NonEmpty, prompt: Text }),
  modelAction: modelOrName(),
  create: modelOrName({ from: Text }),
  copy: Type.Object({ source: NonEmpty, destination: NonEmpty }),
  // ChatMiddleware refuses an empty or missing list ("[] is too short - 'messages'").
  openAiChat: Type.Object({ model: NonEmpty, messages: Messages({ minItems: 1 }) }),
  openAiCompletion: Type.Object({ model: NonEmpty }),
  // EmbeddingsMiddleware refuses a missing input and an empty list.
  openAiEmbeddings: Type.Object({ model: NonEmpty, input: Type.Union([Type.String(), Type.Array(Type.Unknown(), { minItems: 1 })]) }),
  openAiResponses: Type.Object({ model: NonEmpty }),
  // AnthropicMessagesMiddleware refuses a missing model, max_tokens <= 0 and no messages.
  anthropicMessages: Type.Object({
    model: NonEmpty,
    max_tokens: Type.Integer({ minimum: 1 }),
    messages: Messages({ minItems: 1 })
  })
} satisfies Record<string, TSchema>

export const params = {
  digest: Type.Object({ digest: Type.String({ pattern: '^sha256[:-][0-9a-fA-F]{64}$' }) }),
  model: Type.Object({ model: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:+-]{0,254}$' }) }),
  key: Type.Object({ key: Type.String({ minLength: 1 }) })
}
