import { readdir, readFile } from 'node:fs/promises';

/** Linux reports process CPU time in clock ticks of 1/100 s (USER_HZ) on every common configuration. */
const TICKS_PER_SECOND = 100;

/** User plus system CPU time of a process so far, in milliseconds (its threads included, children not). */
export async function processCpuMs(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; count fields from after its closing parenthesis.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]);
  return (ticks * 1_000) / TICKS_PER_SECOND;
}

/** `roots` and every process descending from one of them, from the parent pids in `/proc`. */
export async function withDescendants(roots: readonly number[]): Promise<number[]> {
  const children = new Map<number, number[]>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => undefined);
    if (stat === undefined) continue;
    const parent = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    children.set(parent, [...(children.get(parent) ?? []), Number(entry)]);
  }
  const found = new Set<number>();
  const pending = [...roots];
  for (let pid = pending.pop(); pid !== undefined; pid = pending.pop()) {
    if (found.has(pid)) continue;
    found.add(pid);
    pending.push(...(children.get(pid) ?? []));
  }
  return [...found];
}

/** The sum over `pids`; a process that is gone counts 0. */
export async function totalCpuMs(pids: readonly number[]): Promise<number> {
  const values = await Promise.all(pids.map((pid) => processCpuMs(pid).catch(() => 0)));
  return values.reduce((sum, value) => sum + value, 0);
}

/**
 * CPU time of `roots` and all their descendants so far, ms, including the processes that have exited since
 * (a parent's reaped children are in its `cutime`/`cstime`): a Postgres backend of a closed connection still
 * counts, under the postmaster. Monotonic, so two readings can be subtracted.
 */
export async function treeCpuMs(roots: readonly number[]): Promise<number> {
  const values = await Promise.all(
    (await withDescendants(roots)).map(async (pid) => {
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
      if (stat === undefined) return 0;
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ticks = [11, 12, 13, 14].reduce((sum, index) => sum + Number(fields[index]), 0);
      return (ticks * 1_000) / TICKS_PER_SECOND;
    }),
  );
  return values.reduce((sum, value) => sum + value, 0);
}
