import { spawn } from 'node:child_process';
import path from 'node:path';
import { describeExit, forEachLine, isRunning, terminate, waitForExit } from '../../stack/child-process.js';
import { killOnExit } from '../../stack/kill-on-exit.js';

export type RoleProcess = {
  readonly name: string;
  readonly pid: number;
  /** True once it exited (on its own or stopped). */
  readonly exited: boolean;
  /** SIGTERM, SIGKILL after 10 s; resolves when it has exited. */
  stop(): Promise<void>;
};

const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * Runs `node --import tsx <entry>` with exactly `env`, its output lines tagged `[name]` on our stderr.
 * Unlike the stack's supervisor, it hands back the pid: the benchmark reads the gateway's memory by pid.
 * With `cpuProfileDir`, Node writes CPU profiles of the whole run in `<cpuProfileDir>/<name>/` on exit (one per
 * thread: the main thread's is the largest; the others are tsx's module loader). `nodeOptions` go to node
 * before the entry (a heap-snapshot signal, say).
 */
export function startRoleProcess(
  name: string,
  entry: string,
  env: NodeJS.ProcessEnv,
  options: { readonly cpuProfileDir?: string | undefined; readonly nodeOptions?: readonly string[] | undefined } = {},
): RoleProcess {
  const profile = options.cpuProfileDir
    ? ['--cpu-prof', '--cpu-prof-dir', path.join(options.cpuProfileDir, name)]
    : [];
  const child = spawn(process.execPath, [...profile, ...(options.nodeOptions ?? []), '--import', 'tsx', path.resolve(ROOT, entry)], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
    // Its own process group: a Ctrl-C reaches the benchmark, which stops the roles in order.
    detached: true,
  });
  if (child.pid === undefined) throw new Error(`${name} did not start`);
  const forget = killOnExit(child.pid);
  let stopping = false;
  forEachLine(child.stdout, (line) => process.stderr.write(`[${name}] ${line}\n`));
  forEachLine(child.stderr, (line) => process.stderr.write(`[${name}] ${line}\n`));
  const exited = waitForExit(child).then((status) => {
    forget();
    if (!stopping) process.stderr.write(`[${name}] exited with ${describeExit(status)}\n`);
  });
  return {
    name,
    pid: child.pid,
    get exited() {
      return !isRunning(child);
    },
    async stop() {
      stopping = true;
      await terminate(child, { killAfterMs: 10_000 });
      await exited;
    },
  };
}

/** Polls `check` every 100 ms until it resolves true; rejects after `timeoutMs` or when `process` exits. */
export async function waitUntil(what: string, check: () => Promise<boolean>, options: { readonly timeoutMs: number; readonly process?: RoleProcess }): Promise<void> {
  const deadline = Date.now() + options.timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (options.process?.exited) throw new Error(`${options.process.name} exited while waiting for ${what}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/** True when GET `url` answers 200. */
export async function answers200(url: string): Promise<boolean> {
  const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await response.body?.cancel();
  return response.status === 200;
}
