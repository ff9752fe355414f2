import type { FastifyPluginAsync } from 'fastify'
import { sendError } from '../http/error-shapes.js'
import type { RouteSpec } from '../http/route-spec.js'
import { matchesEtag, PAGE_SECURITY_HEADERS, readStaticFiles, staticFolder, type StaticFile } from './static-files.js'

export interface AdminPageOptions {
  /** The route rows: `GET /proxy/ui` (redirects) and `GET /proxy/ui/*` (the files). */
  routes: { pageRoot: RouteSpec, page: RouteSpec }
  /** The folder of the page's files; the installation's `plugins/ui/static` by default. */
  folder?: string
}

/**
 * The admin page (README, "Admin page"): the static files of `plugins/ui/static` at `/proxy/ui/`,
 * read into memory at start. The page is public (the browser loads it before anyone signs in);
 * everything it shows comes from the keyed API with the key the user gives it. `ui.enabled: false`
 * registers nothing, so its paths are 404 like any unknown path. A folder that cannot be read is
 * one error line at start and the page is off; the proxy serves on.
 *
 * Every answer of this scope carries PAGE_SECURITY_HEADERS. Files are revalidated on every load
 * (`Cache-Control: no-cache` with an ETag): their URLs do not change when an upgrade changes them.
 */
const adminPage: FastifyPluginAsync<AdminPageOptions> = async function adminPage (scope, { routes, folder = staticFolder() }) {
  if (!scope.config.ui.enabled) return
  let files: Map<string, StaticFile>
  try {
    files = readStaticFiles(folder)
  } catch (err) {
    scope.log.error({ folder, reason: (err as Error).message }, 'the admin page\'s files cannot be read: /proxy/ui/ is off (reinstall, or set ui.enabled: false)')
    return
  }

  scope.addHook('onSend', async function pageHeaders (_request, reply, payload) {
    reply.headers(PAGE_SECURITY_HEADERS)
    if (!reply.hasHeader('cache-control')) reply.header('cache-control', 'no-store')
    return payload
  })

  scope.get(routes.pageRoot.path, { config: { route: routes.pageRoot } }, async function toPage (_request, reply) {
    // Relative: behind a front that adds a path prefix, the browser stays under it.
    return await reply.redirect('ui/', 308)
  })

  scope.get(routes.page.path, { config: { route: routes.page } }, async function pageFile (request, reply) {
    // Looked up in the table, never joined to a path: a name of the table or nothing.
    const name = (request.params as { '*'?: string })['*'] || 'index.html'
    const file = files.get(name)
    if (file === undefined) return sendError(request, reply, 404, `no file ${routes.page.path.slice(0, -1)}${name} in the admin page`)
    reply.header('cache-control', 'no-cache').header('etag', file.etag)
    if (matchesEtag(request.headers['if-none-match'], file.etag)) return await reply.code(304).send()
    return await reply.header('content-type', file.contentType).send(file.body)
  })
}

export default adminPage
