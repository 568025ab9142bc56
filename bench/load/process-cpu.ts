import { readFile } from 'node:fs/promises';

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

/** The sum over `pids`; a process that is gone counts 0. */
export async function totalCpuMs(pids: readonly number[]): Promise<number> {
  const values = await Promise.all(pids.map((pid) => processCpuMs(pid).catch(() => 0)));
  return values.reduce((sum, value) => sum + value, 0);
}
