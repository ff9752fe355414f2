// Tokens per day as stacked SVG bars, one chart per key and one per model, from
// GET /proxy/usage?by=key,day and ?by=model,day. Drawn with createElementNS: names are text.
import { el, formatCompact, formatNumber, replaceChildren, svg } from './dom.js'

/** Series drawn by name; the rest are summed as one ("other keys"). The palette has as many colours plus one. */
const MOST_SERIES = 8
const WIDTH = 640
const HEIGHT = 240
const MARGIN = { top: 12, right: 8, bottom: 28, left: 52 }
const DAY_MS = 24 * 60 * 60 * 1000

/** Every day from `since` to `until` (YYYY-MM-DD, both included). */
export function daysBetween (since, until) {
  const days = []
  for (let t = Date.parse(`${since}T00:00:00Z`); t <= Date.parse(`${until}T00:00:00Z`); t += DAY_MS) days.push(new Date(t).toISOString().slice(0, 10))
  return days
}

/**
 * The report's rows as series of tokens (prompt + completion) per day, grouped by `field`
 * ('key' or 'model'): the MOST_SERIES largest by total, then one series for the rest.
 */
export function seriesOf (report, field, otherName) {
  const days = daysBetween(report.since, report.until)
  const dayIndex = new Map(days.map((day, i) => [day, i]))
  const byName = new Map()
  for (const row of report.rows) {
    const i = dayIndex.get(row.day)
    if (i === undefined) continue
    const name = row[field] ?? '(none)'
    const values = byName.get(name) ?? new Array(days.length).fill(0)
    values[i] += row.prompt_tokens + row.completion_tokens
    byName.set(name, values)
  }
  const total = values => values.reduce((a, b) => a + b, 0)
  const ranked = [...byName].map(([name, values]) => ({ name, values, total: total(values) }))
    .filter(s => s.total > 0)
    .sort((a, b) => b.total - a.total || (a.name < b.name ? -1 : 1))
  if (ranked.length <= MOST_SERIES + 1) return { days, series: ranked }
  const rest = ranked.slice(MOST_SERIES)
  const values = days.map((_, i) => rest.reduce((sum, s) => sum + s.values[i], 0))
  return { days, series: [...ranked.slice(0, MOST_SERIES), { name: `${otherName} (${rest.length})`, values, total: total(values), other: true }] }
}

/** The smallest 1, 2 or 5 times a power of ten at or above `n`, at least 1 (tokens are whole). */
function niceStep (n) {
  if (n <= 1) return 1
  const power = 10 ** Math.floor(Math.log10(n))
  return [1, 2, 5, 10].map(f => f * power).find(step => step >= n)
}

/** Draws `chart` ({ days, series }) into `figure` with its caption, axis and legend. */
export function drawChart (figure, caption, chart) {
  const { days, series } = chart
  const totals = days.map((_, i) => series.reduce((sum, s) => sum + s.values[i], 0))
  if (series.length === 0) {
    replaceChildren(figure, el('figcaption', {}, caption), el('p', { class: 'empty' }, 'No tokens used in these days.'))
    return
  }
  const step = niceStep(Math.max(...totals) / 4)
  const top = step * Math.max(1, Math.ceil(Math.max(...totals) / step))
  const plotWidth = WIDTH - MARGIN.left - MARGIN.right
  const plotHeight = HEIGHT - MARGIN.top - MARGIN.bottom
  const slot = plotWidth / days.length
  const barWidth = Math.max(1, slot * 0.78)
  const y = value => MARGIN.top + plotHeight - (value / top) * plotHeight

  const ticks = Array.from({ length: top / step + 1 }, (_, i) => i * step)
  const grid = ticks.map(value => svg('g', { class: 'tick' },
    svg('line', { x1: MARGIN.left, x2: WIDTH - MARGIN.right, y1: y(value), y2: y(value) }),
    svg('text', { x: MARGIN.left - 6, y: y(value), 'text-anchor': 'end', 'dominant-baseline': 'middle' }, formatCompact(value))))
  const labelEvery = Math.ceil(days.length / 8)
  const labels = days.map((day, i) => (days.length - 1 - i) % labelEvery !== 0
    ? null
    : svg('text', { class: 'day', x: MARGIN.left + slot * (i + 0.5), y: HEIGHT - 8, 'text-anchor': 'middle' }, day.slice(5)))

  const bars = []
  days.forEach((day, i) => {
    let base = 0
    series.forEach((s, k) => {
      const value = s.values[i]
      if (value === 0) return
      bars.push(svg('rect', {
        class: `bar ${s.other === true ? 'series-other' : `series-${k}`}`,
        x: (MARGIN.left + slot * i + (slot - barWidth) / 2).toFixed(2),
        y: y(base + value).toFixed(2),
        width: barWidth.toFixed(2),
        height: Math.max(0.5, y(base) - y(base + value)).toFixed(2),
        'data-day': day
      }, svg('title', {}, `${day} · ${s.name}: ${formatNumber(value)} tokens`)))
      base += value
    })
  })

  const legend = el('ul', { class: 'legend' }, series.map((s, k) => el('li', {},
    el('span', { class: `swatch ${s.other === true ? 'series-other' : `series-${k}`}` }),
    el('span', { class: 'series-name' }, s.name), ' ', el('span', { class: 'muted' }, formatNumber(s.total)))))
  replaceChildren(figure,
    el('figcaption', {}, caption),
    svg('svg', { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: 'img', 'aria-label': caption }, grid, labels, bars),
    legend)
}

/** Both charts from the two reports (by key and day, by model and day). */
export function renderUsageCharts (byKey, byModel) {
  drawChart(document.getElementById('chart-by-key'), 'Tokens per day, by key', seriesOf(byKey, 'key', 'other keys'))
  drawChart(document.getElementById('chart-by-model'), 'Tokens per day, by model', seriesOf(byModel, 'model', 'other models'))
}
