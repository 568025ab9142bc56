import type { Redis } from 'ioredis';
import type { NatsConnection } from 'nats';
import { sql, type DatabasePool } from 'slonik';

/** A dependency a role needs to do its work; `probe` rejects when it is not reachable. */
export type ReadinessCheck = { readonly name: string; readonly probe: () => Promise<unknown> };

export type Readiness = {
  readonly ready: boolean;
  /** What `/ready` answers: no error text, which may name hosts, users or worse. */
  readonly checks: Readonly<Record<string, 'ok' | 'failed'>>;
  /** Why each failed check failed, for the role's own log. */
  readonly failures: Readonly<Record<string, string>>;
};

/** Runs every check at once, each bounded by `timeoutMs`. */
export async function checkReadiness(checks: readonly ReadinessCheck[], timeoutMs = 2_000): Promise<Readiness> {
  const results = await Promise.all(
    checks.map(async ({ name, probe }) => {
      try {
        await Promise.race([
          probe(),
          new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs).unref()),
        ]);
        return { name, failure: undefined };
      } catch (error) {
        return { name, failure: error instanceof Error ? error.message : String(error) };
      }
    }),
  );
  return {
    ready: results.every(({ failure }) => failure === undefined),
    checks: Object.fromEntries(results.map(({ name, failure }) => [name, failure === undefined ? 'ok' : 'failed'])),
    failures: Object.fromEntries(results.flatMap(({ name, failure }) => (failure === undefined ? [] : [[name, failure]]))),
  };
}

export const postgresReady = (pool: DatabasePool): ReadinessCheck => ({
  name: 'postgres',
  probe: () => pool.query(sql.unsafe`SELECT 1`),
});

/** A round trip to the server: fails while the connection is down and reconnecting. */
export const natsReady = (nc: NatsConnection): ReadinessCheck => ({
  name: 'nats',
  probe: async () => {
    if (nc.isClosed()) throw new Error('connection closed');
    await nc.flush();
  },
});

export const redisReady = (redis: Redis): ReadinessCheck => ({ name: 'redis', probe: () => redis.ping() });

/** A check that fails once `start()` is called: a role shutting down tells its load balancer first. */
export function drainingCheck(): { readonly check: ReadinessCheck; start(): void } {
  let draining = false;
  return {
    check: {
      name: 'draining',
      probe: () => (draining ? Promise.reject(new Error('shutting down: draining')) : Promise.resolve()),
    },
    start() {
      draining = true;
    },
  };
}
