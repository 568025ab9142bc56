import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { TestProject } from 'vitest/node';
import { migrate } from '../../src/shared/migrate.js';
import { getFreePorts } from '../../stack/free-port.js';
import { startNatsServer, type NatsServer } from '../../stack/nats-server.js';
import { runUsers, type NatsUser } from '../../stack/nats-permissions.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../stack/postgres.js';
import { startRedisServer, type RedisServer } from '../../stack/redis-server.js';

/** What the test run's servers are; read in tests with `inject('infra')` (see infra.ts). */
export type TestInfra = {
  /** The `postgres` database, for CREATE DATABASE. */
  readonly postgresAdminUrl: string;
  /** `postgres://user:password@host:port`, without a database. */
  readonly postgresBaseUrl: string;
  /** Migrated once per run; each test file copies it. */
  readonly templateDatabase: string;
  readonly natsUrl: string;
  /**
   * The NATS users of the run, as in production (nats-permissions.ts) but for any prefix, stream and durable,
   * plus `operator` (everything allowed) for tests that look from outside. Servers a test starts itself take
   * the same users.
   */
  readonly natsUsers: readonly NatsUser[];
  readonly redisUrl: string;
  /** processes.ts leaves a file per running role here, so that teardown can kill what a dead worker left. */
  readonly processDir: string;
};

declare module 'vitest' {
  export interface ProvidedContext {
    infra: TestInfra;
  }
}

const TEMPLATE_DATABASE = 'chat_template';

/**
 * Starts Postgres, NATS (JetStream) and Redis once per test run, on free ports and in a temporary
 * directory, so that a running `npm start` is never touched.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const root = await mkdtemp(path.join(tmpdir(), 'matcha-test-'));
  // Postgres runs as the `postgres` user when we are root and must be able to reach its data directory.
  await chmod(root, 0o755);
  const processDir = path.join(root, 'processes');
  await mkdir(processDir);
  const [postgresPort = 0, natsPort = 0, redisPort = 0] = await getFreePorts(3);
  const natsUsers = runUsers().users;

  const started = await Promise.allSettled([
    startEmbeddedPostgres({ dataDir: path.join(root, 'postgres'), port: postgresPort, durable: false }),
    startNatsServer({ storeDir: path.join(root, 'nats'), port: natsPort, users: natsUsers }),
    startRedisServer({ port: redisPort, dir: path.join(root, 'redis') }),
  ]);
  const [postgres, nats, redis] = started.map((result) => (result.status === 'fulfilled' ? result.value : undefined)) as [
    EmbeddedPostgres | undefined,
    NatsServer | undefined,
    RedisServer | undefined,
  ];

  // Ctrl-C ends vitest without running teardown; its servers die with the terminal's signal, but roles
  // spawned by a dead worker and the temporary directory would stay behind.
  const onExit = (): void => {
    killLeftoverRoles(processDir);
    rmSync(root, { recursive: true, force: true });
  };
  process.once('exit', onExit);
  const teardown = async (): Promise<void> => {
    process.off('exit', onExit);
    killLeftoverRoles(processDir);
    await Promise.allSettled([redis?.close(), nats?.close(), postgres?.close()]);
    await rm(root, { recursive: true, force: true });
  };

  try {
    const failure = started.find((result) => result.status === 'rejected');
    if (failure) throw failure.reason;
    if (!postgres || !nats || !redis) throw new Error('unreachable');
    await postgres.createDatabase(TEMPLATE_DATABASE);
    await migrate(postgres.url(TEMPLATE_DATABASE));
    project.provide('infra', {
      postgresAdminUrl: postgres.adminUrl,
      postgresBaseUrl: postgres.adminUrl.slice(0, postgres.adminUrl.lastIndexOf('/')),
      templateDatabase: TEMPLATE_DATABASE,
      natsUrl: nats.url,
      natsUsers,
      redisUrl: redis.url,
      processDir,
    });
  } catch (error) {
    await teardown();
    throw error;
  }
  return teardown;
}

/** Kills role processes whose test worker died before stopping them (a worker killed on timeout, say). */
function killLeftoverRoles(processDir: string): void {
  for (const file of readdirOrEmpty(processDir)) {
    const pid = Number(file);
    const entry = readOrEmpty(path.join(processDir, file));
    const cmdline = readOrEmpty(`/proc/${pid}/cmdline`);
    // Checking the command line keeps a recycled pid from being killed.
    if (Number.isInteger(pid) && entry !== '' && cmdline.includes(entry)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  }
}

function readdirOrEmpty(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function readOrEmpty(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
