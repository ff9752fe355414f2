// The key list (GET /proxy/keys) and a key's own usage (GET /proxy/me).
import { budgetCell, byId, el, formatExpiry, formatNumber, formatTime, replaceChildren } from './dom.js'

/**
 * Fills the keys table. `actions` (for keys:admin only, else null) has `edit`, `rotate` and
 * `revoke`, each called with the key's entry from the list.
 */
export function renderKeys (keys, actions) {
  byId('keys').classList.toggle('with-actions', actions !== null)
  const rows = keys.length === 0
    ? [el('tr', {}, el('td', { colspan: 9, class: 'empty' }, 'No named keys yet.'))]
    : keys.map(key => keyRow(key, actions))
  replaceChildren(byId('keys').tBodies[0], rows)
}

function keyRow (key, actions) {
  const { day, month } = key.usage
  const expires = [key.expires_at === null ? el('span', { class: 'muted' }, 'never') : formatExpiry(key.expires_at)]
  for (const until of key.previous_keys_valid_until) expires.push(el('div', { class: 'hint' }, `old key until ${formatTime(until)}`))
  return el('tr', { 'data-key': key.name },
    el('td', { class: 'name' }, key.name),
    el('td', {}, el('ul', { class: 'names' }, key.scopes.map(scope => el('li', { class: 'scope' }, scope)))),
    el('td', {}, key.models === null ? el('span', { class: 'muted' }, 'all') : el('ul', { class: 'names' }, key.models.map(model => el('li', { class: 'model' }, model)))),
    el('td', {}, budgetCell(day.tokens, key.limits.tokens_per_day)),
    el('td', {}, budgetCell(month.tokens, key.limits.tokens_per_month)),
    el('td', {}, budgetCell(day.requests, key.limits.requests_per_day)),
    el('td', {}, expires),
    el('td', {}, key.last_used === null ? el('span', { class: 'muted' }, 'never') : formatTime(key.last_used)),
    el('td', { class: 'actions' }, actions === null
      ? null
      : [
          button('Edit', 'edit', () => actions.edit(key)),
          button('Rotate', 'rotate', () => actions.rotate(key)),
          button('Revoke', 'revoke danger', () => actions.revoke(key))
        ]))
}

function button (label, className, onClick) {
  const node = el('button', { type: 'button', class: className }, label)
  node.addEventListener('click', onClick)
  return node
}

const LIMIT_NAMES = {
  requests_per_minute: 'Requests per minute',
  tokens_per_minute: 'Tokens per minute',
  concurrent: 'Requests at once',
  queued: 'Requests waiting for a host',
  tokens_per_day: 'Tokens per day',
  tokens_per_month: 'Tokens per month',
  requests_per_day: 'Requests per day'
}

/** Fills the "Your key" card from a /proxy/me answer. */
export function renderOwnUsage (me) {
  const { day, month } = me.usage
  const budgets = el('table', { class: 'budgets' },
    el('thead', {}, el('tr', {}, el('th', {}, ''), el('th', {}, 'Tokens'), el('th', {}, 'Requests'), el('th', {}, 'Starts again'))),
    el('tbody', {},
      el('tr', {}, el('th', {}, 'Today'), el('td', {}, budgetCell(day.tokens.used, day.tokens.limit)), el('td', {}, budgetCell(day.requests.used, day.requests.limit)), el('td', {}, formatTime(day.tokens.reset))),
      el('tr', {}, el('th', {}, 'This month'), el('td', {}, budgetCell(month.tokens.used, month.tokens.limit)), el('td', {}, budgetCell(month.requests.used, month.requests.limit)), el('td', {}, formatTime(month.tokens.reset)))))
  const limits = Object.entries(me.limits).filter(([name]) => !name.endsWith('_day') && !name.endsWith('_month'))
  replaceChildren(byId('own-usage'),
    el('dl', { class: 'facts' },
      el('dt', {}, 'Name'), el('dd', { id: 'own-name' }, me.name ?? ''),
      el('dt', {}, 'Scopes'), el('dd', {}, me.scopes.join(', ')),
      el('dt', {}, 'Models'), el('dd', {}, me.models === null ? 'all' : me.models.join(', ')),
      el('dt', {}, 'Expires'), el('dd', {}, me.expires_at === null ? 'never' : formatExpiry(me.expires_at)),
      limits.map(([name, value]) => [el('dt', {}, LIMIT_NAMES[name] ?? name), el('dd', {}, formatNumber(value))])),
    budgets)
}
