import { randomBytes } from 'node:crypto'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { notWritableError } from './write-failures.js'

/**
 * Creates the config file of a first start: two fresh random tokens (generate and model), Ollama
 * at localhost, mode 0600; never overwrites an existing file. Throws ConfigNotWritableError
 * naming the path and the fix when the folder is read-only or not ours (a Docker `:ro` mount);
 * other errors as they are.
 */
export function writeFreshConfig (file: string): void {
  const token = () => randomBytes(24).toString('base64url')
  const text = [
    '# Created by ollama-proxy on first start with fresh random tokens.',
    '# Every field is documented in config/config.example.yaml.',
    'auth:',
    '  generate_tokens:',
    `    - "${token()}"`,
    '  model_tokens:',
    `    - "${token()}"`,
    'service:',
    '  base_url: "http://localhost:11434"',
    ''
  ].join('\n')
  try {
    mkdirSync(dirname(file), { recursive: true })
    writeFileSync(file, text, { mode: 0o600, flag: 'wx' })
  } catch (err) {
    throw notWritableError(err, file, 'create') ?? err
  }
}
