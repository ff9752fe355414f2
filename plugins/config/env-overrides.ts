/**
 * Writes the environment's overrides into the parsed file (OLLAMA_BASE_URL replaces the file's
 * Ollama hosts; HOST, PORT and LOG_LEVEL their fields); returns which field each variable set,
 * so a bad value is blamed on the variable, not on the file.
 */
export function applyEnvOverrides (data: unknown, env: NodeJS.ProcessEnv): Map<string, string> {
  const fromEnv = new Map<string, string>()
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return fromEnv
  const root = data as Record<string, Record<string, unknown> | undefined>
  const section = (name: string): Record<string, unknown> => {
    const current = root[name]
    if (current === undefined || current === null) root[name] = {}
    return root[name] as Record<string, unknown>
  }
  if (env.OLLAMA_BASE_URL) {
    const service = section('service')
    service.base_url = env.OLLAMA_BASE_URL
    delete service.upstreams
    fromEnv.set('service.base_url', 'OLLAMA_BASE_URL')
  }
  if (env.HOST) {
    section('server').host = env.HOST
    fromEnv.set('server.host', 'HOST')
  }
  if (env.PORT) {
    const port = /^\d+$/.test(env.PORT.trim()) ? Number(env.PORT) : NaN
    section('server').port = Number.isInteger(port) ? port : env.PORT
    fromEnv.set('server.port', 'PORT')
  }
  if (env.LOG_LEVEL) {
    section('log').level = env.LOG_LEVEL
    fromEnv.set('log.level', 'LOG_LEVEL')
  }
  return fromEnv
}
