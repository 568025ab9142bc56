import { spawn } from 'node:child_process';
import { rm } from 'node:fs/promises';
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
 * Where `npm run build` puts a source entry (`src/gateway/main.ts` -> `dist/gateway/main.js`), and
 * `tsc -p bench/baseline/tsconfig.build.json` the baseline's (`bench/baseline/main.ts` ->
 * `dist-bench/bench/baseline/main.js`).
 */
export function compiledEntry(entry: string): string {
  const js = entry.replace(/\.ts$/, '.js');
  return js.startsWith('src/') ? `dist/${js.slice('src/'.length)}` : `dist-bench/${js}`;
}

/** Compiles the roles and the baseline as the image does (`npm run build`), for `compiled` role processes. */
export async function buildCompiledRoles(): Promise<void> {
  const run = (args: readonly string[]) =>
    new Promise<void>((resolve, reject) => {
      const child = spawn(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), ...args], { cwd: ROOT, stdio: 'inherit' });
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`tsc ${args.join(' ')} exited with ${code}`))));
    });
  for (const dir of ['dist', 'dist-bench']) await rm(path.join(ROOT, dir), { recursive: true, force: true });
  await run(['-p', 'tsconfig.build.json']);
  await run(['-p', 'bench/baseline/tsconfig.build.json']);
}

/**
 * Runs `node --import tsx <entry>` with exactly `env`, its output lines tagged `[name]` on our stderr; with
 * `compiled`, `node <compiled entry>` instead (built beforehand by `buildCompiledRoles`): what the image runs,
 * without tsx's loader thread or the `name` property its keepNames gives every named function.
 * Unlike the stack's supervisor, it hands back the pid: the benchmark reads the gateway's memory by pid.
 * With `cpuProfileDir`, Node writes CPU profiles of the whole run in `<cpuProfileDir>/<name>/` on exit (one per
 * thread: the main thread's is the largest; the others are tsx's module loader). `nodeOptions` go to node
 * before the entry (a heap-snapshot signal, say).
 */
export function startRoleProcess(
  name: string,
  entry: string,
  env: NodeJS.ProcessEnv,
  options: {
    readonly cpuProfileDir?: string | undefined;
    readonly nodeOptions?: readonly string[] | undefined;
    readonly compiled?: boolean | undefined;
  } = {},
): RoleProcess {
  const profile = options.cpuProfileDir
    ? ['--cpu-prof', '--cpu-prof-dir', path.join(options.cpuProfileDir, name)]
    : [];
  const program = options.compiled ? [path.resolve(ROOT, compiledEntry(entry))] : ['--import', 'tsx', path.resolve(ROOT, entry)];
  const child = spawn(process.execPath, [...profile, ...(options.nodeOptions ?? []), ...program], {
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
