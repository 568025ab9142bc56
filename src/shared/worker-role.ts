import type { NatsConnection } from 'nats';
import type { Registry } from 'prom-client';
import type { DatabasePool } from 'slonik';
import type { HopTimes } from './hop-times.js';
import type { Logger } from './logger.js';
import { startOpsServer } from './ops-server.js';
import { natsReady, postgresReady, type ReadinessCheck } from './readiness.js';
import { installShutdown, shutdownOnFailure, type Closable } from './shutdown.js';

/** The loop of a role without a public port: runs until `stop()`; `done` rejects on a fatal error. */
export type Worker = { readonly done: Promise<void>; stop(): Promise<void> };

/**
 * The common tail of the relay's, the projector's, the fan-out's and the notifier's `main.ts`: their operators' port
 * (`/health`, `/ready` on Postgres and NATS, `/metrics`), then shutdown in phases on a signal or when the
 * worker fails: the worker, the ops server, the role's own `resources` (a lease, say), NATS, the pool.
 * @returns the shutdown function (for the role's process hygiene).
 */
export async function serveWorkerRole(options: {
  readonly name: string;
  readonly worker: Worker;
  readonly logger: Logger;
  readonly opsPort: number;
  /** OPS_HOST; loopback when not given. */
  readonly opsHost?: string;
  readonly registry: Registry;
  readonly pool: DatabasePool;
  readonly nc: NatsConnection;
  /** What else `/ready` checks besides Postgres and NATS (the notifier's Redis, say). */
  readonly readiness?: readonly ReadinessCheck[];
  readonly resources?: readonly Closable[];
  /** Served on the ops port when enabled (benchmarks). */
  readonly hopTimes?: HopTimes;
}): Promise<(reason: string) => Promise<void>> {
  const { logger, pool, nc } = options;
  const ops = await startOpsServer({
    host: options.opsHost ?? '127.0.0.1',
    port: options.opsPort,
    registry: options.registry,
    readiness: [postgresReady(pool), natsReady(nc), ...(options.readiness ?? [])],
    logger,
    ...(options.hopTimes && { hopTimes: options.hopTimes }),
  });
  const shutdown = installShutdown({
    logger,
    phases: [
      { name: options.name, close: () => options.worker.stop() },
      { name: 'ops server', close: () => ops.close() },
      ...(options.resources ?? []),
      { name: 'nats', close: () => nc.drain() },
      { name: 'database', close: () => pool.end() },
    ],
  });
  shutdownOnFailure(options.worker.done, { logger, shutdown, what: options.name });
  return shutdown;
}
