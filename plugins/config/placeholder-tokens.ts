// Tokens printed in the README and the example file: publicly known, so never accepted.
export const PLACEHOLDER_TOKENS = new Set([
  'your-generate-token-1', 'your-generate-token-2', 'your-model-token-1', 'your-model-token-2',
  'change-me-generate-token', 'change-me-model-token', 'change-me-metrics-token', 'change-me-named-token', 'change-me',
  'changeme', 'secret', 'token', 'password', 'your-token', 'your-key', 'your-api-key', 'api-key', 'xxx'
])

/**
 * A token the documentation shows instead of a real one: the list above (any case), anything
 * starting with "change-me"/"changeme"/"your-", and any `<...>` slot such as `<secret>`,
 * `<a generate token>` or `sha256:<64 hex>`.
 */
export function isPlaceholderToken (token: string): boolean {
  const lower = token.trim().toLowerCase()
  return PLACEHOLDER_TOKENS.has(lower) || /^(change-?me|your-)/.test(lower) || /<[^<>]*>/.test(lower)
}
