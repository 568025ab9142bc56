import { createHash } from 'node:crypto';
import { userInfo } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '../src/shared/config.js';
import { migrate } from '../src/shared/migrate.js';
import { isPortFree } from './free-port.js';
import { lineTag } from './line-tag.js';
import { startNatsServer } from './nats-server.js';
import { generatePasswords, roleCredentialsEnv, roleUsers, type NatsRole } from './nats-permissions.js';
import { startEmbeddedPostgres, untraversableParent } from './postgres.js';
import { startRedisServer } from './redis-server.js';
import { ROLES } from './roles.js';
import { DEV_JWT_SECRET, loadStackConfig, roleEnvironment, type StackConfig } from './stack-config.js';
import { createSupervisor } from './supervisor.js';

/**
 * `npm start`: the whole stack on one machine. Starts Postgres, NATS and Redis unless their URLs are given,
 * migrates, runs every role as its own process (one that exits is started again, with backoff), and on
 * Ctrl-C stops the roles first, then the servers.
 */

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const tag = lineTag('stack');
const say = (message: string): void => void process.stdout.write(`${tag} ${message}\n`);
const complain = (message: string): void => void process.stderr.write(`${tag} ${message}\n`);
const messageOf = (error: unknown): string => (error instanceof Error ? error.message : String(error));

type ServerName = 'postgres' | 'nats-server' | 'redis-server';
/** Servers stop after the roles, the ones nothing else depends on first; Postgres last. */
const CLOSE_ORDER: readonly ServerName[] = ['redis-server', 'nats-server', 'postgres'];

const config = readConfig();
const DATA_DIR = path.resolve(ROOT, config.STACK_DATA_DIR ?? '.data');
const owned = new Map<ServerName, { close(): Promise<void> }>();
let stopping: Promise<void> | undefined;
const supervisor = createSupervisor({ cwd: ROOT, report: say });

for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(signal, () => {
    // Ctrl-C under npm arrives more than once (terminal, npm, bootstrap); shutdown is bounded anyway.
    if (stopping) say(`${signal}: already stopping`);
    else void stop(0, signal);
  });
}

const started = startStack();
started.catch((error: unknown) => {
  complain(messageOf(error));
  void stop(1, 'startup failed');
});

function readConfig(): StackConfig {
  try {
    return loadStackConfig();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    complain(error.message);
    process.exit(1);
  }
}

function stop(code: number, reason: string): Promise<void> {
  stopping ??= (async () => {
    say(`stopping (${reason})`);
    // What is still starting is owned only once it is up; let it get there, then close it with the rest.
    await started.catch(() => undefined);
    let failed = false;
    await supervisor.stopAll();
    for (const name of CLOSE_ORDER) {
      const server = owned.get(name);
      if (!server) continue;
      try {
        await server.close();
        say(`${name} stopped`);
      } catch (error) {
        failed = true;
        complain(`${name} did not stop cleanly: ${messageOf(error)}`);
      }
    }
    process.exit(code === 0 && failed ? 1 : code);
  })();
  return stopping;
}

function own<T extends { close(): Promise<void> }>(name: ServerName, server: T): T {
  owned.set(name, server);
  return server;
}

function serverLogs(name: string): { onLog?: (line: string) => void } {
  if (!config.STACK_SERVER_LOGS) return {};
  const serverTag = lineTag(name);
  return { onLog: (line) => void process.stdout.write(`${serverTag} ${line}\n`) };
}

async function assertDefaultPortsFree(): Promise<void> {
  const wanted: { name: string; port: number; variable: string; external: string }[] = [];
  if (!config.DATABASE_URL) {
    wanted.push({ name: 'postgres', port: config.STACK_POSTGRES_PORT, variable: 'STACK_POSTGRES_PORT', external: 'DATABASE_URL' });
  }
  if (!config.NATS_URL) wanted.push({ name: 'nats-server', port: config.STACK_NATS_PORT, variable: 'STACK_NATS_PORT', external: 'NATS_URL' });
  if (!config.REDIS_URL) {
    wanted.push({ name: 'redis-server', port: config.STACK_REDIS_PORT, variable: 'STACK_REDIS_PORT', external: 'REDIS_URL' });
  }
  const taken = [];
  for (const entry of wanted) if (!(await isPortFree(entry.port))) taken.push(entry);
  if (taken.length === 0) return;
  throw new Error(
    taken
      .map(
        (entry) =>
          `port ${entry.port} for ${entry.name} is already in use on 127.0.0.1: stop what holds it ` +
          `(an earlier npm start?), set ${entry.variable} to another port, or ${entry.external} to use a running server`,
      )
      .join('\n'),
  );
}

async function startPostgres(): Promise<{ url: string; note: string }> {
  if (config.DATABASE_URL) return { url: config.DATABASE_URL, note: 'DATABASE_URL' };
  const dataDir = await postgresDataDir();
  const postgres = own(
    'postgres',
    await startEmbeddedPostgres({ dataDir, port: config.STACK_POSTGRES_PORT, durable: true, ...serverLogs('postgres') }),
  );
  await postgres.createDatabase('chat');
  return { url: postgres.url('chat'), note: `embedded, data in ${path.relative(ROOT, dataDir)}` };
}

/**
 * `.data/postgres`, unless we are root and the postgres user cannot reach it (a clone under /root, say): then
 * a folder of our own under /var/lib, one per clone. A STACK_DATA_DIR is used as given.
 */
async function postgresDataDir(): Promise<string> {
  const local = path.join(DATA_DIR, 'postgres');
  if (config.STACK_DATA_DIR !== undefined || userInfo().uid !== 0 || (await untraversableParent(ROOT)) === null) return local;
  const shared = path.join('/var/lib/matcha-chat', createHash('sha256').update(ROOT).digest('hex').slice(0, 12), 'postgres');
  say(`${ROOT} is private to root, so the postgres data lives in ${shared}`);
  return shared;
}

/**
 * Our own nats-server lets in only one user per role, each with its permissions and a password made up for
 * this run (`passwords`, handed to the roles); an external NATS_URL is used as given, with the
 * NATS_USER/NATS_PASSWORD of our environment if any.
 */
async function startNats(): Promise<{ url: string; note: string; passwords?: Record<NatsRole, string> }> {
  if (config.NATS_URL) return { url: config.NATS_URL, note: 'NATS_URL' };
  const storeDir = path.join(DATA_DIR, 'nats');
  const passwords = generatePasswords();
  const users = roleUsers(
    {
      subjectPrefix: config.NATS_SUBJECT_PREFIX,
      stream: config.NATS_STREAM,
      projectorDurable: config.PROJECTOR_DURABLE,
      fanoutDurable: config.FANOUT_DURABLE,
      notifierDurable: config.NOTIFIER_DURABLE,
    },
    passwords,
  );
  const nats = own(
    'nats-server',
    await startNatsServer({ storeDir, port: config.STACK_NATS_PORT, users, detached: true, ...serverLogs('nats') }),
  );
  return { url: nats.url, note: `nats-server -js, a user per role, store in ${path.relative(ROOT, storeDir)}`, passwords };
}

async function startRedis(): Promise<{ url: string; note: string }> {
  if (config.REDIS_URL) return { url: config.REDIS_URL, note: 'REDIS_URL' };
  const redis = own(
    'redis-server',
    await startRedisServer({
      port: config.STACK_REDIS_PORT,
      dir: path.join(DATA_DIR, 'redis'),
      detached: true,
      ...serverLogs('redis'),
    }),
  );
  return { url: redis.url, note: 'redis-server, not persisted' };
}

async function startStack(): Promise<void> {
  await assertDefaultPortsFree();
  const jwtSecret = config.JWT_SECRET ?? DEV_JWT_SECRET;
  if (!config.JWT_SECRET) say(`warning: JWT_SECRET is not set; using "${DEV_JWT_SECRET}", fit for local development only`);

  say('starting postgres, nats-server and redis-server');
  // allSettled, not all: on a failure the others must finish starting (and be owned) before stop() runs.
  const results = await Promise.allSettled([startPostgres(), startNats(), startRedis()]);
  const failure = results.find((result) => result.status === 'rejected');
  if (failure) throw failure.reason;
  const [postgres, nats, redis] = results.map((result) => (result.status === 'fulfilled' ? result.value : undefined));
  if (!postgres || !nats || !redis || stopping) return;

  const applied = await migrate(postgres.url);
  say(applied.length > 0 ? `migrations applied: ${applied.join(', ')}` : 'schema up to date');
  if (stopping) return;

  const env = roleEnvironment({
    databaseUrl: postgres.url,
    natsUrl: nats.url,
    redisUrl: redis.url,
    port: config.PORT,
    jwtSecret,
    logLevel: config.LOG_LEVEL,
  });
  const natsPasswords = results[1].status === 'fulfilled' ? results[1].value.passwords : undefined;
  for (const role of ROLES) {
    const password = natsPasswords?.[role.name];
    supervisor.start(role, password === undefined ? env : { ...env, ...roleCredentialsEnv(role.name, password) });
  }

  say('up');
  const rows: [string, string, string][] = [
    ['postgres', postgres.url, postgres.note],
    ['nats', nats.url, nats.note],
    ['redis', redis.url, redis.note],
    ['http', `http://127.0.0.1:${config.PORT}`, 'PORT'],
    ['roles', ROLES.map((role) => role.name).join(', '), 'one process each'],
  ];
  for (const [name, value, note] of rows) process.stdout.write(`  ${name.padEnd(10)}${value}  (${note})\n`);
  say('Ctrl-C stops everything');
}
