import { Busboy } from '@fastify/busboy'
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
  const fromQuery = goQueryValues(rawQuery, 'model')
  const fromForm = await formFields(body, contentType, 'model')
  const models = [...fromQuery, ...fromForm]
  if (models.length === 0 || models[0] === '') throw new ProxyError(400, 'model is required')
  if (models.some(model => /[^\x20-\x7e]/.test(model))) throw new ProxyError(400, 'model must be printable ASCII')
  return models.filter(model => model !== '')
}

async function formFields (body: Buffer, contentType: string, wanted: string): Promise<string[]> {
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
