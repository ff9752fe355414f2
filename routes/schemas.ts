import { Type, type TSchema } from 'typebox'

// Schemas check only what the proxy relies on. They stay open (no additionalProperties: false)
// and carry no defaults, so every field Ollama adds later reaches it untouched.

const NonEmpty = Type.String({ minLength: 1 })
const Message = Type.Object({ role: Type.String() })
const StringOrStrings = Type.Union([Type.String(), Type.Array(Type.String())])

/** Ollama resolves `model` first and falls back to the deprecated `name` that real clients still send. */
function modelOrName (properties: Record<string, TSchema> = {}): TSchema {
  return Type.Object(
    { model: Type.Optional(NonEmpty), name: Type.Optional(NonEmpty), ...properties },
    { anyOf: [{ required: ['model'] }, { required: ['name'] }] }
  )
}

export const schemas = {
  generate: Type.Object({ model: NonEmpty, prompt: Type.Optional(Type.String()) }),
  chat: Type.Object({ model: NonEmpty, messages: Type.Optional(Type.Array(Message)) }),
  embed: Type.Object({ model: NonEmpty, input: Type.Optional(StringOrStrings) }),
  embeddings: Type.Object({ model: NonEmpty, prompt: Type.Optional(Type.String()) }),
  modelAction: modelOrName(),
  copy: Type.Object({ source: NonEmpty, destination: NonEmpty }),
  webSearch: Type.Object({ query: NonEmpty }),
  webFetch: Type.Object({ url: NonEmpty }),
  openAiChat: Type.Object({ model: NonEmpty, messages: Type.Array(Message, { minItems: 1 }) }),
  openAiCompletion: Type.Object({ model: NonEmpty }),
  openAiEmbeddings: Type.Object({ model: NonEmpty, input: Type.Union([Type.String(), Type.Array(Type.Unknown(), { minItems: 1 })]) }),
  openAiResponses: Type.Object({ model: NonEmpty }),
  anthropicMessages: Type.Object({
    model: NonEmpty,
    max_tokens: Type.Integer({ minimum: 1 }),
    messages: Type.Array(Type.Object({ role: Type.String() }), { minItems: 1 })
  })
} satisfies Record<string, TSchema>

export const params = {
  digest: Type.Object({ digest: Type.String({ pattern: '^sha256[:-][0-9a-fA-F]{64}$' }) }),
  model: Type.Object({ model: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9._:+-]{0,254}$' }) }),
  key: Type.Object({ key: Type.String({ minLength: 1 }) })
}
