// A node:test reporter that writes one JSON line per skipped test (file, name, reason);
// scripts/run-tests.mjs runs it beside the spec reporter and sums the lines up at the end.
export default async function * skipReporter (source) {
  for await (const event of source) {
    if (event.type !== 'test:pass' || event.data.skip === undefined || event.data.skip === false) continue
    const reason = typeof event.data.skip === 'string' ? event.data.skip : 'skipped without a reason'
    yield JSON.stringify({ file: event.data.file ?? '', name: event.data.name, reason }) + '\n'
  }
}
