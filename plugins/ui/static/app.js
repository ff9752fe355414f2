// The admin page: sign in with a key, then what the key may see. keys:admin and usage:read see
// the hosts, the requests in flight, every key and the charts of everyone's usage; keys:admin may
// add, change, rotate and revoke keys; any other key sees only its own usage.
import { api, ApiError, session } from './api.js'
import { byId, replaceChildren } from './dom.js'
import { setUpKeyDialogs } from './key-dialogs.js'
import { renderKeys, renderOwnUsage } from './keys-view.js'
import { renderStatus } from './status-view.js'
import { renderUsageCharts } from './usage-charts.js'

/** How often the views are read again while the tab is visible (ms). */
const STATUS_EVERY_MS = 5_000
const KEYS_EVERY_MS = 30_000
const USAGE_EVERY_MS = 5 * 60_000

const VIEWS = ['sign-in-view', 'own-view', 'status-view', 'keys-view', 'usage-view']

let me = null
let timers = []
const actions = setUpKeyDialogs(() => { refreshKeys(); refreshUsage() })

const may = scope => me !== null && me.scopes.includes(scope)
const overseer = () => may('keys:admin') || may('usage:read')

function showOnly (...visible) {
  for (const id of VIEWS) byId(id).hidden = !visible.includes(id)
}

function notify (message) {
  const notice = byId('notice')
  notice.textContent = message
  notice.hidden = message === ''
}

/** Counts sign-ins and sign-outs: an answer read for an earlier session is dropped, never shown. */
let sessionNumber = 0

/**
 * A view's refresh: `read` the API, then `render` the answer, unless the previous refresh of the
 * same view is still going or the session changed meanwhile. An answer of 401 (the key was
 * revoked, expired or lost its scope) signs out; other failures are shown.
 */
function refresher (read, render) {
  let runningFor = null
  return async () => {
    if (runningFor === sessionNumber || me === null) return
    const started = runningFor = sessionNumber
    try {
      const answer = await read()
      if (started === sessionNumber) render(answer)
    } catch (err) {
      if (started !== sessionNumber) return
      if (err instanceof ApiError && err.status === 401) signOut(`Signed out: ${err.message}`)
      else notify(`Could not refresh: ${err.message}`)
    } finally {
      if (runningFor === started) runningFor = null
    }
  }
}

const refreshStatus = refresher(() => api('GET', 'proxy/status'), renderStatus)
const refreshKeys = refresher(() => api('GET', 'proxy/keys'), answer => renderKeys(answer.keys, may('keys:admin') ? actions : null))
const refreshUsage = refresher(
  () => Promise.all([api('GET', 'proxy/usage?since=30d&by=key,day'), api('GET', 'proxy/usage?since=30d&by=model,day')]),
  ([byKey, byModel]) => renderUsageCharts(byKey, byModel))
const refreshOwn = refresher(() => api('GET', 'proxy/me'), answer => {
  me = answer
  renderOwnUsage(me)
})

function every (ms, refresh) {
  timers.push(setInterval(() => { if (!document.hidden) refresh() }, ms))
}

/** Everything this key may see, read now and then again every few seconds. */
function refreshers () {
  if (!overseer()) return [[KEYS_EVERY_MS, refreshOwn]]
  return [[STATUS_EVERY_MS, refreshStatus], [KEYS_EVERY_MS, refreshKeys], [USAGE_EVERY_MS, refreshUsage]]
}

async function start () {
  const started = ++sessionNumber
  let answer
  try {
    answer = await api('GET', 'proxy/me')
  } catch (err) {
    if (started === sessionNumber) signOut(err.message)
    return
  }
  if (started !== sessionNumber) return
  me = answer
  notify('')
  byId('signed-in-as').textContent = me.name ?? 'a key'
  byId('session').hidden = false
  byId('add-key').hidden = !may('keys:admin')
  if (overseer()) {
    showOnly('status-view', 'keys-view', 'usage-view')
  } else {
    renderOwnUsage(me)
    showOnly('own-view')
  }
  const list = refreshers()
  for (const [ms, refresh] of list) every(ms, refresh)
  await Promise.all(list.map(([, refresh]) => refresh()))
}

/** Forgets the key and everything read with it; `message` says why, on the sign-in form. */
function signOut (message = '') {
  sessionNumber++
  session.clear()
  me = null
  for (const timer of timers) clearInterval(timer)
  timers = []
  for (const dialog of document.querySelectorAll('dialog')) dialog.close()
  for (const id of ['hosts', 'requests', 'keys']) replaceChildren(byId(id).tBodies[0])
  for (const id of ['own-usage', 'chart-by-key', 'chart-by-model']) replaceChildren(byId(id))
  byId('session').hidden = true
  byId('signed-in-as').textContent = ''
  byId('sign-in-error').textContent = message
  notify('')
  showOnly('sign-in-view')
  byId('key-input').focus()
}

byId('sign-in-form').addEventListener('submit', event => {
  event.preventDefault()
  const input = byId('key-input')
  const key = input.value.trim()
  input.value = ''
  if (key === '') return
  session.set(key)
  start()
})
byId('sign-out').addEventListener('click', () => signOut())
byId('refresh').addEventListener('click', () => { for (const [, refresh] of refreshers()) refresh() })
byId('add-key').addEventListener('click', () => actions.add())

if (session.key === null) signOut()
else start()
