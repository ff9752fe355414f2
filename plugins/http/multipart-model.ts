import { ProxyError } from './error-shapes.js'

/**
 * Only a plain `multipart/form-data; boundary=...` is read: anything fancier (several parameters,
 * duplicates) could make busboy and Go's `mime.ParseMediaType` pick different boundaries.
 */
const PLAIN_FORM_TYPE = /^multipart\/form-data\s*;\s*boundary=(?:"([^"\\]{1,70})"|([0-9A-Za-z'()+_,\-./:=?]{1,70}))\s*$/i

/** Values of `key` in a query string, decoded as Go's `url.ParseQuery` does; refuses what Go refuses. */
function goQueryValues (rawQuery: string, key: string): string[] {
  if (rawQuery === '') return []
  // Go (since 1.17) reports a ';' as an error, and Ollama answers that with 400.
  if (rawQuery.includes(';')) throw new ProxyError(400, 'invalid query string: ";" is not a separator')
  const values: string[] = []
  for (const pair of rawQuery.split('&')) {
    if (pair === '') continue
    const equals = pair.indexOf('=')
    const name = equals < 0 ? pair : pair.slice(0, equals)
    const value = equals < 0 ? '' : pair.slice(equals + 1)
    try {
      if (decodeURIComponent(name.replaceAll('+', ' ')) === key) values.push(decodeURIComponent(value.replaceAll('+', ' ')))
    } catch {
      throw new ProxyError(400, 'invalid query string: bad percent-encoding')
    }
  }
  return values
}

/**
 * The model(s) a multipart transcription names, the way Ollama's `TranscriptionMiddleware`
 * (middleware/openai.go) reads them: `c.Request.FormValue("model")` gives the first value of
 * `r.Form["model"]`, where Go's ParseForm puts the URL query values first and ParseMultipartForm
 * appends the form fields. So `?model=` wins over the form field.
 *
 * Returns every value named `model` (query and form, Go's pick first) so that the caller checks all
 * of them: any part the two parsers might classify differently is still checked.
 * @throws ProxyError 400 (not a plain multipart form, unreadable form or query, no model)
 */
export async function multipartModels (body: Buffer, contentType: string | undefined, rawQuery: string): Promise<string[]> {
  if (contentType === undefined || !PLAIN_FORM_TYPE.test(contentType)) {
    throw new ProxyError(400, 'a transcription must be sent as multipart/form-data with one boundary parameter')
  }
  const match = PLAIN_FORM_TYPE.exec(contentType)!
  checkFraming(body, match[1] ?? match[2])
  const fromQuery = goQueryValues(rawQuery, 'model')
  const fromForm = await formFields(body, contentType, 'model')
  const models = [...fromQuery, ...fromForm]
  if (models.length === 0 || models[0] === '') throw new ProxyError(400, 'model is required')
  if (models.some(model => /[^\x20-\x7e]/.test(model))) throw new ProxyError(400, 'model must be printable ASCII')
  return models.filter(model => model !== '')
}

const CRLF = Buffer.from('\r\n')
const HEADER_END = Buffer.from('\r\n\r\n')
const PLAIN_TRANSFER_ENCODINGS = new Set(['7bit', '8bit', 'binary'])

function ambiguous (why: string): ProxyError {
  return new ProxyError(400, `multipart form refused: ${why}`)
}

/**
 * Refuses the forms busboy and Go's mime/multipart could read differently, before either reads
 * it: a preamble or bare-LF delimiters (Go accepts LF-only lines, busboy does not), folded part
 * headers, several or encoded `name` parameters (Go lets `name*` override `name` and joins
 * RFC 2231 continuations), and quoted-printable or base64 parts (Go decodes quoted-printable).
 */
function checkFraming (body: Buffer, boundary: string): void {
  const dashBoundary = Buffer.from('--' + boundary)
  if (!body.subarray(0, dashBoundary.length).equals(dashBoundary)) throw ambiguous('it must start with its boundary')
  const lfDelimiter = Buffer.from('\n--' + boundary)
  for (let at = body.indexOf(lfDelimiter); at >= 0; at = body.indexOf(lfDelimiter, at + 1)) {
    if (at === 0 || body[at - 1] !== 0x0d) throw ambiguous('lines must end with CRLF')
  }
  const delimiter = Buffer.from('\r\n--' + boundary)
  let at = dashBoundary.length
  for (;;) {
    if (body[at] === 0x2d && body[at + 1] === 0x2d) return // closing delimiter: the rest is epilogue
    if (!body.subarray(at, at + 2).equals(CRLF)) throw ambiguous('a boundary line must end right after the boundary')
    const headersEnd = body.indexOf(HEADER_END, at)
    if (headersEnd < 0) throw ambiguous('a part has no end of headers')
    checkPartHeaders(body.subarray(at + 2, headersEnd).toString('latin1'))
    const next = body.indexOf(delimiter, headersEnd)
    if (next < 0) throw ambiguous('it has no closing boundary')
    at = next + delimiter.length
  }
}

function checkPartHeaders (block: string): void {
  let dispositions = 0
  for (const line of block === '' ? [] : block.split('\r\n')) {
    if (line.startsWith(' ') || line.startsWith('\t')) throw ambiguous('folded part headers')
    const colon = line.indexOf(':')
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if (name === 'content-transfer-encoding' && !PLAIN_TRANSFER_ENCODINGS.has(value.toLowerCase())) throw ambiguous(`Content-Transfer-Encoding ${value}`)
    if (name !== 'content-disposition') continue
    if (++dispositions > 1) throw ambiguous('a part with two Content-Disposition headers')
    const keys = parameterKeys(value)
    const names = keys.filter(key => key.startsWith('name'))
    if (names.length > 1 || names.some(key => key !== 'name')) throw ambiguous('a part named twice or with an encoded name')
  }
}

/** Lower-cased parameter names of a header value, quoted strings skipped. */
function parameterKeys (value: string): string[] {
  const keys: string[] = []
  let inQuotes = false
  let start = value.indexOf(';')
  if (start < 0) return keys
  for (let i = start + 1; i <= value.length; i++) {
    const char = value[i]
    if (inQuotes) {
      if (char === '\\') i++
      else if (char === '"') inQuotes = false
    } else if (char === '"') {
      inQuotes = true
    } else if (char === ';' || i === value.length) {
      const parameter = value.slice(start + 1, i)
      const equals = parameter.indexOf('=')
      keys.push((equals < 0 ? parameter : parameter.slice(0, equals)).trim().toLowerCase())
      start = i
    }
  }
  return keys
}

async function formFields (body: Buffer, contentType: string, wanted: string): Promise<string[]> {
  // Loaded on the first transcription upload: most deployments never see one.
  const { Busboy } = await import('@fastify/busboy')
  return await new Promise<string[]>((resolve, reject) => {
    const values: string[] = []
    let parser
    try {
      parser = Busboy({
        headers: { 'content-type': contentType },
        // Every part named `model` is read as a value, whatever its filename or type says; the
        // audio and other parts are skipped unread.
        isPartAFile: (name) => name !== wanted,
        limits: { fieldSize: 4096, parts: 1000, headerPairs: 100 }
      })
    } catch {
      reject(new ProxyError(400, 'failed to parse multipart form'))
      return
    }
    parser.on('file', (_name, stream) => { stream.resume() })
    parser.on('field', (name, value, _nameTruncated, valueTruncated) => {
      if (name !== wanted) return
      if (valueTruncated) {
        reject(new ProxyError(400, 'the model field is too long'))
        return
      }
      values.push(value)
    })
    parser.on('partsLimit', () => { reject(new ProxyError(400, 'multipart form has too many parts')) })
    parser.once('error', () => { reject(new ProxyError(400, 'failed to parse multipart form')) })
    parser.once('finish', () => { resolve(values) })
    parser.end(body)
  })
}
