/**
 * Every value of the header `name` (lower case) when the request has more than one line of it,
 * else undefined (no array made: the common case, on every request). `rawHeaders` is Node's
 * `IncomingMessage.rawHeaders`: name, value, name, value, ... as received. Node's `headers`
 * keeps only the first line of headers such as Host and Authorization.
 */
export function repeatedHeader (rawHeaders: readonly string[], name: string): string[] | undefined {
  let values: string[] | undefined
  let first: string | undefined
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const candidate = rawHeaders[i]
    if (candidate.length !== name.length || candidate.toLowerCase() !== name) continue
    if (first === undefined) first = rawHeaders[i + 1]
    else (values ??= [first]).push(rawHeaders[i + 1])
  }
  return values
}
