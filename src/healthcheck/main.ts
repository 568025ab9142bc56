import { ConfigError, configSchemas, loadConfig } from '../shared/config.js';

// The image's HEALTHCHECK (`node dist/healthcheck/main.js`; node:slim has no curl): exits 0 when the role in
// this container answers GET /health on its ops port (OPS_PORT, OPS_HOST) within the deadline, 1 otherwise.

const DEADLINE_MS = 2_000;

/** Where to reach a server listening on `host`: a wildcard address is reached on loopback. */
function probeHost(host: string): string {
  if (host === '0.0.0.0') return '127.0.0.1';
  if (host === '::') return '[::1]';
  return host.includes(':') ? `[${host}]` : host;
}

let config;
try {
  config = loadConfig(configSchemas.healthcheck);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  process.stderr.write(`healthcheck: ${error.message}\n`);
  process.exit(1);
}

const url = `http://${probeHost(config.OPS_HOST)}:${config.OPS_PORT}/health`;
try {
  const response = await fetch(url, { signal: AbortSignal.timeout(DEADLINE_MS) });
  if (!response.ok) {
    process.stderr.write(`healthcheck: ${url} answered ${response.status}\n`);
    process.exit(1);
  }
} catch (error) {
  process.stderr.write(`healthcheck: ${url}: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
}
