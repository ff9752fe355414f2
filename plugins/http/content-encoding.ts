import type { IncomingMessage } from 'node:http'
import { Decompress } from 'fzstd'
import { ProxyError } from './error-shapes.js'

/**
 * Ollama decodes a zstd body into at most 20 MiB (middleware/openai.go and server/cloud_proxy.go,
 * `maxDecompressedBodySize = 20 << 20`); a larger one fails there, so it is refused here (413).
 */
export const OLLAMA_MAX_DECODED_BYTES = 20 << 20
/** Ollama's zstd reader is built with `zstd.WithDecoderMaxMemory(8 << 20)`: no window above 8 MiB. */
export const OLLAMA_MAX_ZSTD_WINDOW = 8 << 20

/**
 * The Content-Encoding Ollama sees: Go's `Header.Get` returns the first header line as sent
 * (Node joins repeated lines with ", ", so the raw header list is read instead).
 * Returns '' when there is none.
 */
export function firstContentEncoding (request: IncomingMessage): string {
  const raw = request.rawHeaders
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].toLowerCase() === 'content-encoding') return raw[i + 1]
  }
  return ''
}

/**
 * What the proxy must read for its checks: the bytes as sent, or their zstd decoding where Ollama
 * decodes it. Ollama decodes exactly `Content-Encoding: zstd` (case and spelling exact) on the
 * routes listed in the route table's `decodes` column and no encoding anywhere else, so any other
 * label would make the two readings differ: 415 (deny when unsure). `identity` is harmless.
 * @param decodable encodings the route's Ollama handler decodes (route table)
 * @param cap decoded bytes allowed; past it 413 (a compression bomb)
 * @throws ProxyError 415 (encoding Ollama does not decode here), 400 (corrupt zstd, window too
 *   large for Ollama), 413 (decoded size above cap)
 */
export function bytesToCheck (request: IncomingMessage, body: Buffer, decodable: readonly string[], cap: number): Buffer {
  const encoding = firstContentEncoding(request)
  if (encoding === '' || encoding === 'identity') return body
  if (encoding === 'zstd' && decodable.includes('zstd')) return decodeZstd(body, Math.min(cap, OLLAMA_MAX_DECODED_BYTES))
  const where = decodable.length > 0 ? `only ${decodable.join(', ')} on this route` : 'no request encoding on this route'
  throw new ProxyError(415, `Content-Encoding "${encoding}" is not accepted: Ollama decodes ${where}`)
}

class DecodedTooLarge extends Error {}

/**
 * Decodes a zstd body into at most `cap` bytes. Every frame's window is checked first because the
 * decoder allocates it up front (a 9-byte frame may ask for 2 GiB).
 * @throws ProxyError 400 (corrupt or window above 8 MiB), 413 (more than `cap` decoded bytes)
 */
export function decodeZstd (body: Buffer, cap: number): Buffer {
  checkZstdFrames(body)
  const parts: Uint8Array[] = []
  let size = 0
  const decoder = new Decompress((chunk) => {
    size += chunk.length
    if (size > cap) throw new DecodedTooLarge()
    parts.push(chunk)
  })
  try {
    decoder.push(body, true)
  } catch (err) {
    if (err instanceof DecodedTooLarge) throw new ProxyError(413, `decoded request body is larger than ${cap} bytes`)
    throw new ProxyError(400, 'failed to decompress zstd body')
  }
  return Buffer.concat(parts, size)
}

const ZSTD_MAGIC = 0xfd2fb528
const BLOCK_HEADER_BYTES = 3
const RLE_BLOCK = 1
const RESERVED_BLOCK = 3

/** Walks the frames of a zstd body (RFC 8878 §3.1) and refuses windows Ollama would refuse. */
function checkZstdFrames (body: Buffer): void {
  const corrupt = () => new ProxyError(400, 'failed to decompress zstd body')
  let at = 0
  if (body.length === 0) throw corrupt()
  while (at < body.length) {
    if (at + 4 > body.length) throw corrupt()
    const magic = body.readUInt32LE(at)
    if ((magic & 0xfffffff0) === 0x184d2a50) { // skippable frame
      if (at + 8 > body.length) throw corrupt()
      at += 8 + body.readUInt32LE(at + 4)
      continue
    }
    if (magic !== ZSTD_MAGIC || at + 5 > body.length) throw corrupt()
    const descriptor = body[at + 4]
    const singleSegment = (descriptor >> 5) & 1
    const checksum = (descriptor >> 2) & 1
    const dictionaryBytes = [0, 1, 2, 4][descriptor & 3]
    const sizeFlag = descriptor >> 6
    const sizeBytes = sizeFlag === 0 ? singleSegment : 1 << sizeFlag
    let header = at + 5
    let window = 0
    if (singleSegment === 0) {
      const exponent = body[header] >> 3
      const base = 2 ** (10 + exponent)
      window = base + (base / 8) * (body[header] & 7)
      header++
    }
    header += dictionaryBytes
    if (header + sizeBytes > body.length) throw corrupt()
    if (singleSegment === 1) {
      let contentSize = 0
      for (let i = sizeBytes - 1; i >= 0; i--) contentSize = contentSize * 256 + body[header + i]
      window = sizeBytes === 2 ? contentSize + 256 : contentSize
    }
    if (window > OLLAMA_MAX_ZSTD_WINDOW) throw new ProxyError(400, `zstd window of ${window} bytes is larger than Ollama accepts (${OLLAMA_MAX_ZSTD_WINDOW})`)
    at = header + sizeBytes
    for (let last = 0; last === 0;) {
      if (at + BLOCK_HEADER_BYTES > body.length) throw corrupt()
      const block = body[at] | (body[at + 1] << 8) | (body[at + 2] << 16)
      last = block & 1
      const type = (block >> 1) & 3
      if (type === RESERVED_BLOCK) throw corrupt()
      at += BLOCK_HEADER_BYTES + (type === RLE_BLOCK ? 1 : block >>> 3)
    }
    at += checksum * 4
  }
  if (at !== body.length) throw corrupt()
}
