import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import type { HopTimes } from './hop-times.js';
import type { Logger } from './logger.js';
import { watchReadiness } from './metrics.js';
import { checkReadiness, type ReadinessCheck } from './readiness.js';

export type OpsServer = { readonly port: number; close(): Promise<void> };

/**
 * The operators' port of every role: `GET /health` (the process is alive), `GET /ready` (its dependencies
 * answer; 503 otherwise, with which one failed but not why: that goes to the log), `GET /metrics`
 * (Prometheus text). It listens on `host`, loopback unless OPS_HOST says otherwise: nothing on it is for
 * clients. Port 0 picks a free port; the log line names it. With hop times kept (a benchmark setting,
 * hop-times.ts), `GET /hop-times` answers them as `{ "records": { "<key>": { "<point>": ms } } }`.
 */
export async function startOpsServer(options: {
  readonly host: string;
  readonly port: number;
  readonly registry: Registry;
  readonly readiness: readonly ReadinessCheck[];
  readonly logger: Logger;
  readonly hopTimes?: HopTimes;
}): Promise<OpsServer> {
  watchReadiness(options.registry, async () => (await checkReadiness(options.readiness)).ready);
  const server = createServer((request, response) => {
    const reply = (status: number, contentType: string, body: string) => {
      response.writeHead(status, { 'content-type': contentType }).end(body);
    };
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET') return reply(405, 'application/json', JSON.stringify({ error: 'GET only' }));
    if (path === '/health') return reply(200, 'application/json', JSON.stringify({ status: 'ok' }));
    if (path === '/ready') {
      void checkReadiness(options.readiness).then(({ ready, checks, failures }) => {
        if (!ready) options.logger.warn({ failures }, 'not ready');
        reply(ready ? 200 : 503, 'application/json', JSON.stringify({ status: ready ? 'ready' : 'not ready', checks }));
      });
      return;
    }
    if (path === '/metrics') {
      void options.registry.metrics().then(
        (text) => reply(200, options.registry.contentType, text),
        (error: unknown) => {
          options.logger.error({ err: error }, 'collecting metrics failed');
          reply(500, 'text/plain', 'collecting metrics failed');
        },
      );
      return;
    }
    if (path === '/hop-times' && options.hopTimes?.enabled) {
      return reply(200, 'application/json', JSON.stringify({ records: options.hopTimes.records() }));
    }
    reply(404, 'application/json', JSON.stringify({ error: 'not found' }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, resolve);
  });
  const { port } = server.address() as AddressInfo;
  options.logger.info({ host: options.host, port }, `ops server on port ${port} of ${options.host}: /health, /ready, /metrics`);
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
