import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { migrate } from '../../src/shared/migrate.js';
import { getFreePorts } from '../../stack/free-port.js';
import { startNatsServer, type NatsServer } from '../../stack/nats-server.js';
import { runUsers, type NatsRole } from '../../stack/nats-permissions.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../stack/postgres.js';
import { startRedisServer, type RedisServer } from '../../stack/redis-server.js';

export type BenchServers = {
  readonly postgres: EmbeddedPostgres;
  readonly nats: NatsServer;
  /** Each role logs in to NATS as its own user (as under `npm start`); the load tool as the operator. */
  readonly natsPasswords: Readonly<Record<NatsRole, string>>;
  readonly natsOperatorPassword: string;
  readonly redis: RedisServer;
  /** Our service's database (migrated) and the baseline's: one cluster, two databases. */
  readonly oursDatabaseUrl: string;
  readonly baselineDatabaseUrl: string;
  close(): Promise<void>;
};

/**
 * Private servers on free ports for one benchmark run: Postgres durable (fsync and synchronous commit on,
 * as in production and bench/event-log.ts), nats-server with JetStream, redis-server. Both systems use
 * the same servers, one after the other.
 */
export async function startBenchServers(): Promise<BenchServers> {
  const root = await mkdtemp(path.join(tmpdir(), 'matcha-load-'));
  await chmod(root, 0o755); // Postgres runs as the postgres user when we are root
  const [pgPort = 0, natsPort = 0, redisPort = 0] = await getFreePorts(3);
  const postgres = await startEmbeddedPostgres({ dataDir: path.join(root, 'postgres'), port: pgPort, durable: true });
  const natsAuth = runUsers();
  const nats = await startNatsServer({ storeDir: path.join(root, 'nats'), port: natsPort, users: natsAuth.users });
  const redis = await startRedisServer({ dir: path.join(root, 'redis'), port: redisPort });
  await postgres.createDatabase('ours');
  await postgres.createDatabase('baseline');
  const oursDatabaseUrl = postgres.url('ours');
  await migrate(oursDatabaseUrl);
  return {
    postgres,
    nats,
    natsPasswords: natsAuth.passwords,
    natsOperatorPassword: natsAuth.operatorPassword,
    redis,
    oursDatabaseUrl,
    baselineDatabaseUrl: postgres.url('baseline'),
    async close() {
      await redis.close();
      await nats.close();
      await postgres.close();
      await rm(root, { recursive: true, force: true });
    },
  };
}
