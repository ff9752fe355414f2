import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The default config file, relative to the package root (not to the shell's folder). */
export const DEFAULT_CONFIG_PATH = 'config/config.yaml'

/**
 * The folder holding the proxy's package.json, found from this module's own location, so the
 * default config is the installation's whatever folder the process starts in (works from the
 * sources under tsx and from dist/ alike).
 */
export function packageRoot (): string {
  let dir = dirname(fileURLToPath(import.meta.url))
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir)
    if (parent === dir) return process.cwd()
    dir = parent
  }
  return dir
}

/** Absolute path of the default config file: `<package root>/config/config.yaml`. */
export function defaultConfigPath (): string {
  return join(packageRoot(), DEFAULT_CONFIG_PATH)
}
