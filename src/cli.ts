#!/usr/bin/env node
// The package's command (`npx ollama-proxy`, bin in package.json): `keys ...` edits the config
// file's named keys, `usage ...` reports the usage store; anything else starts the proxy with
// those arguments.
if (process.argv[2] === 'keys') {
  const { runKeysCommand } = await import('./keys-command.js')
  process.exitCode = runKeysCommand(process.argv.slice(3))
} else if (process.argv[2] === 'usage') {
  const { runUsageCommand } = await import('./usage-command.js')
  process.exitCode = await runUsageCommand(process.argv.slice(3))
} else {
  await import('./server.js')
}
