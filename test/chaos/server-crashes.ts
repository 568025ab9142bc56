import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { waitUntil } from '../support/wait-until.js';

/** The postmaster's pid, from `postmaster.pid` in the data directory; undefined when no server runs there. */
export async function postmasterPid(dataDir: string): Promise<number | undefined> {
  const text = await readFile(path.join(dataDir, 'postmaster.pid'), 'utf8').catch(() => '');
  const pid = Number.parseInt(text.split('\n')[0] ?? '', 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/**
 * A Postgres crash: SIGKILL to the postmaster and to every process it started (backends, checkpointer, WAL
 * writer) at once, as a power cut or the OOM killer of its container would; resolves once all are gone.
 * Nothing is flushed or checkpointed: the next start replays the WAL.
 */
export async function crashPostgres(dataDir: string): Promise<number> {
  const pid = await postmasterPid(dataDir);
  if (pid === undefined) throw new Error(`no postgres runs on ${dataDir}`);
  // Frozen first, so it forks no backend between the listing of its children and the kill: a backend forked
  // then would outlive it, attached to the shared memory, and the next start would refuse that segment.
  signal(pid, 'SIGSTOP');
  await waitUntil('the postmaster to be stopped', async () => (await processState(pid)) === 'T', {
    timeoutMs: 10_000,
    intervalMs: 10,
  });
  const victims = [pid, ...(await childrenOf(pid))];
  for (const victim of victims) signal(victim, 'SIGKILL');
  await waitUntil('the killed postgres processes to be gone', async () => (await Promise.all(victims.map(isAlive))).every((alive) => !alive), {
    timeoutMs: 10_000,
    intervalMs: 50,
  });
  return pid;
}

async function childrenOf(parent: number): Promise<number[]> {
  const children: number[] = [];
  for (const entry of await readdir('/proc')) {
    const pid = Number(entry);
    if (!Number.isInteger(pid)) continue;
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
    // "pid (comm) state ppid ...": the command name may hold spaces, so split after its closing parenthesis.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid === parent) children.push(pid);
  }
  return children;
}

/** The state letter of `/proc/<pid>/stat` (R running, S sleeping, T stopped, Z zombie), undefined once gone. */
async function processState(pid: number): Promise<string | undefined> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  return stat === '' ? undefined : stat.slice(stat.lastIndexOf(')') + 2)[0];
}

async function isAlive(pid: number): Promise<boolean> {
  const state = await processState(pid);
  // A zombie (state Z) is dead already, only not yet reaped by its parent.
  return state !== undefined && state !== 'Z';
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // already gone
  }
}
