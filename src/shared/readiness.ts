import type { Redis } from 'ioredis';
import type { NatsConnection } from 'nats';
import { sql, type DatabasePool } from 'slonik';

/** A dependency a role needs to do its work; `probe` rejects when it is not reachable. */
export type ReadinessCheck = { readonly name: string; readonly probe: () => Promise<unknown> };

export type Readiness = { readonly ready: boolean; readonly checks: Readonly<Record<string, string>> };

/** Runs every check at once, each bounded by `timeoutMs`. */
export async function checkReadiness(checks: readonly ReadinessCheck[], timeoutMs = 2_000): Promise<Readiness> {
  const results = await Promise.all(
    checks.map(async ({ name, probe }) => {
      try {
        await Promise.race([
          probe(),
          new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs).unref()),
        ]);
        return [name, 'ok'] as const;
      } catch (error) {
        return [name, error instanceof Error ? error.message : String(error)] as const;
      }
    }),
  );
  return { ready: results.every(([, state]) => state === 'ok'), checks: Object.fromEntries(results) };
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
