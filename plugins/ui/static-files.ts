import { createHash } from 'node:crypto'
import { readdirSync, readFileSync } from 'node:fs'
import { extname, join } from 'node:path'
import { packageRoot } from '../config/config-location.js'

/** One file of the admin page, read once at start. */
export interface StaticFile {
  body: Buffer
  /** The Content-Type header, charset included for text. */
  contentType: string
  /** A strong validator of the body (`"<22 base64url chars>"`), for If-None-Match. */
  etag: string
}

/** Content types by file extension: only files of these types are served. */
export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.txt': 'text/plain; charset=utf-8'
}

/**
 * The admin page's folder: `plugins/ui/static` in the installation (the package root, found from
 * this module's location, so the source folder serves both a tsx run and the compiled dist/;
 * tsc copies no files that are not TypeScript, and the Dockerfile copies the folder itself).
 */
export function staticFolder (): string {
  return join(packageRoot(), 'plugins', 'ui', 'static')
}

/**
 * Reads the files directly in `folder` (not its subfolders) whose extension is in
 * {@link CONTENT_TYPES} into a table keyed by file name. The table is the whole of what can be
 * served: a request path is looked up in it, never joined to a folder, so no path can reach a
 * file outside it. Throws the fs error (ENOENT, EACCES) when the folder cannot be read.
 */
export function readStaticFiles (folder: string): Map<string, StaticFile> {
  const files = new Map<string, StaticFile>()
  for (const entry of readdirSync(folder, { withFileTypes: true })) {
    const contentType = CONTENT_TYPES[extname(entry.name)]
    if (!entry.isFile() || contentType === undefined) continue
    const body = readFileSync(join(folder, entry.name))
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`
    files.set(entry.name, { body, contentType, etag })
  }
  return files
}

/** Whether an If-None-Match header (one validator, a list, or `*`) matches `etag`. */
export function matchesEtag (ifNoneMatch: string | undefined, etag: string): boolean {
  if (ifNoneMatch === undefined) return false
  return ifNoneMatch.split(',').some(tag => {
    const trimmed = tag.trim()
    return trimmed === '*' || trimmed === etag || trimmed === `W/${etag}`
  })
}

/**
 * Headers of every answer under /proxy/ui/: scripts and styles only from the page's own files
 * (no inline script, no eval), data only from this origin, never framed (clickjacking), no
 * `<base>` or form posts, no content sniffing, no Referer leaving the page.
 */
export const PAGE_SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': [
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self'", "connect-src 'self'",
    "object-src 'none'", "frame-ancestors 'none'", "base-uri 'none'", "form-action 'none'"
  ].join('; '),
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-resource-policy': 'same-origin'
}
