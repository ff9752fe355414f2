#!/usr/bin/env node
// The package's command (`npx ollama-proxy`, bin in package.json): `keys ...` edits the config
// file's named keys; anything else starts the proxy with those arguments.
if (process.argv[2] === 'keys') {
  const { runKeysCommand } = await import('./keys-command.js')
  process.exitCode = runKeysCommand(process.argv.slice(3))
} else {
  await import('./server.js')
}
