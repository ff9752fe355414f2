import { Type } from 'typebox'

// Bodies of the proxy's own API, in the config file's own names (the key API writes them there).
// Open to fields it does not know of, like every schema here; the config loader checks the rest
// (ranges, dates, model names) and its refusal names the field.

const Scopes = Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })
const Models = Type.Array(Type.String({ minLength: 1 }), { minItems: 1 })
const Count = Type.Integer({ minimum: 0 })
const Limits = Type.Object({
  requests_per_minute: Type.Optional(Count),
  tokens_per_minute: Type.Optional(Count),
  concurrent: Type.Optional(Count),
  tokens_per_day: Type.Optional(Count),
  tokens_per_month: Type.Optional(Count),
  requests_per_day: Type.Optional(Count),
  queued: Type.Optional(Count)
})
const Caps = Type.Object({
  num_ctx: Type.Optional(Type.Integer({ minimum: 1 })),
  keep_alive: Type.Optional(Type.Union([Type.String(), Type.Number()])),
  unload: Type.Optional(Type.Boolean())
})
const Nullable = <T extends ReturnType<typeof Type.Object> | ReturnType<typeof Type.String> | ReturnType<typeof Type.Array> | ReturnType<typeof Type.Integer>>(schema: T) => Type.Union([schema, Type.Null()])
const ChangedLimits = Type.Object(Object.fromEntries(Object.keys(Limits.properties).map(name => [name, Type.Optional(Nullable(Count))])))
const ChangedCaps = Type.Object({
  num_ctx: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
  keep_alive: Type.Optional(Type.Union([Type.String(), Type.Number(), Type.Null()])),
  unload: Type.Optional(Type.Union([Type.Boolean(), Type.Null()]))
})

export const keySchemas = {
  /** POST /proxy/keys */
  newKey: Type.Object({
    name: Type.String({ minLength: 1 }),
    scopes: Scopes,
    models: Type.Optional(Models),
    limits: Type.Optional(Limits),
    caps: Type.Optional(Caps),
    expires_at: Type.Optional(Type.String({ minLength: 1 })),
    weight: Type.Optional(Type.Integer({ minimum: 1 }))
  }),
  /** PATCH /proxy/keys/:name: absent fields stay, null removes one. */
  keyChanges: Type.Object({
    scopes: Type.Optional(Scopes),
    models: Type.Optional(Nullable(Models)),
    limits: Type.Optional(ChangedLimits),
    caps: Type.Optional(ChangedCaps),
    expires_at: Type.Optional(Nullable(Type.String({ minLength: 1 }))),
    weight: Type.Optional(Nullable(Type.Integer({ minimum: 1 })))
  }),
  /** POST /proxy/keys/:name/rotate */
  rotation: Type.Object({ grace: Type.Optional(Type.String({ minLength: 1 })) }),
  nameParams: Type.Object({ name: Type.String({ minLength: 1, maxLength: 64 }) })
}
