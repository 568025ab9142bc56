import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';

export type ExitStatus = { readonly code: number | null; readonly signal: NodeJS.Signals | null };

export function isRunning(child: ChildProcess): boolean {
  return child.pid !== undefined && child.exitCode === null && child.signalCode === null;
}

/** Resolves when the child has exited, or at once if it already has (or never started). Never rejects. */
export function waitForExit(child: ChildProcess): Promise<ExitStatus> {
  const status = (): ExitStatus => ({ code: child.exitCode, signal: child.signalCode });
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(status());
  return new Promise((resolve) => {
    child.once('exit', () => resolve(status()));
    // A child that failed to spawn emits 'error' and never 'exit'.
    child.once('error', () => {
      if (child.pid === undefined) resolve(status());
    });
  });
}

/** Sends `signal`, then SIGKILL if the child is still alive after `killAfterMs`. */
export async function terminate(
  child: ChildProcess,
  options: { readonly signal?: NodeJS.Signals; readonly killAfterMs: number },
): Promise<ExitStatus> {
  const exited = waitForExit(child);
  if (!isRunning(child)) return exited;
  child.kill(options.signal ?? 'SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), options.killAfterMs);
  });
  const first = await Promise.race([exited, timedOut]);
  clearTimeout(timer);
  if (first === 'timeout') child.kill('SIGKILL');
  return exited;
}

/** Calls `onLine` for every line the stream produces. */
export function forEachLine(stream: Readable | null, onLine: (line: string) => void): void {
  if (stream) createInterface({ input: stream, crlfDelay: Infinity }).on('line', onLine);
}

export function describeExit(status: ExitStatus): string {
  return status.signal ? `signal ${status.signal}` : `code ${status.code ?? 'unknown'}`;
}
