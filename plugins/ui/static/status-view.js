// Hosts and requests in flight, from GET /proxy/status.
import { byId, el, formatElapsed, formatNumber, modelLabel, replaceChildren } from './dom.js'

/** Fills the hosts and requests tables from a /proxy/status answer. */
export function renderStatus (status) {
  replaceChildren(byId('hosts').tBodies[0], status.hosts.map(hostRow))
  const requests = status.requests.length === 0
    ? [el('tr', {}, el('td', { colspan: 5, class: 'empty' }, 'No requests in flight.'))]
    : status.requests.map(requestRow)
  replaceChildren(byId('requests').tBodies[0], requests)
}

function hostRow (host) {
  const loaded = host.loaded.length === 0
    ? el('span', { class: 'muted' }, 'none')
    : el('ul', { class: 'names' }, host.loaded.map(name => el('li', { class: 'model' }, modelLabel(name))))
  const inFlight = host.max_concurrent === null ? formatNumber(host.in_flight) : `${formatNumber(host.in_flight)} / ${formatNumber(host.max_concurrent)}`
  return el('tr', { 'data-host': host.name },
    el('td', { class: 'name' }, host.name),
    el('td', {}, el('span', { class: host.healthy ? 'health up' : 'health down' }, host.healthy ? 'healthy' : 'down')),
    el('td', {}, host.version ?? ''),
    el('td', { class: 'number' }, formatNumber(host.models)),
    el('td', { class: 'loaded' }, loaded),
    el('td', { class: 'number' }, inFlight),
    el('td', { class: 'number' }, formatNumber(host.queued)))
}

function requestRow (request) {
  return el('tr', {},
    el('td', { class: 'name' }, request.key ?? ''),
    el('td', { class: 'model' }, request.model === null ? '' : modelLabel(request.model)),
    el('td', {}, request.waiting ? el('span', { class: 'muted' }, 'queued') : request.host ?? ''),
    el('td', {}, el('code', {}, request.route ?? '')),
    el('td', { class: 'number' }, formatElapsed(request.elapsed_ms)))
}
