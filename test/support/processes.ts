import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inject } from 'vitest';
import { forEachLine, isRunning, terminate, waitForExit } from '../../stack/child-process.js';
import { killOnExit } from '../../stack/kill-on-exit.js';
import { ROLES } from '../../stack/roles.js';
import { natsRoleEnv } from './infra.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const ECHO = process.env['TEST_ROLE_LOGS'] === '1';
const STOP_TIMEOUT_MS = 10_000;

export type RoleProcess = {
  readonly pid: number;
  /** Everything printed so far, stdout and stderr interleaved by line. */
  output(): string;
  /** Resolves with the first match of `pattern` in the output; rejects on timeout or when the process exits. */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<string>;
  kill(signal?: NodeJS.Signals): void;
  /** The exit code, or null when a signal ended the process. Never rejects. */
  readonly exited: Promise<number | null>;
  /** SIGTERM, SIGKILL after 10 s; resolves once the process is gone. */
  stop(): Promise<void>;
};

const running = new Set<RoleProcess>();

/**
 * Runs a role's `main.ts` as a real process (`node --import tsx <entry>`, cwd = repo root) with the test
 * environment plus `env`; a compiled `.js` entry runs with plain `node`, as in the image. Output is captured;
 * set TEST_ROLE_LOGS=1 to also echo it.
 */
export async function spawnRole(options: {
  readonly name: string;
  readonly entry: string;
  /** The folder the entry is relative to and the process runs in; the repository when not given. */
  readonly cwd?: string;
  readonly env: Readonly<Record<string, string>>;
  /** Command-line arguments after the entry (the replay CLI's options). */
  readonly args?: readonly string[];
  /** Variables of this process's environment (NODE_ENV, say) the role must not inherit. */
  readonly unset?: readonly string[];
  /** Modules node loads before the entry (`--import`), after tsx: a test's fault, say. */
  readonly preload?: readonly string[];
}): Promise<RoleProcess> {
  const cwd = options.cwd ?? ROOT;
  const entry = path.resolve(cwd, options.entry);
  const stackRole = ROLES.find((candidate) => path.resolve(ROOT, candidate.entry) === entry);
  // A role logs in to NATS as its own user, as under `npm start`; a test may pass other credentials in `env`.
  const env: Record<string, string | undefined> = { ...process.env, OPS_PORT: '0', ...(stackRole && natsRoleEnv(stackRole.name)), ...options.env };
  for (const name of options.unset ?? []) delete env[name];
  const loader = entry.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const preload = (options.preload ?? []).flatMap((module) => ['--import', path.resolve(ROOT, module)]);
  const child: ChildProcess = spawn(process.execPath, [...loader, ...preload, entry, ...(options.args ?? [])], {
    cwd,
    // OPS_PORT 0: each role's /metrics port is picked free, so roles of parallel test files never collide.
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  await new Promise<void>((resolve, reject) => {
    child.once('spawn', resolve);
    child.once('error', (error) => reject(new Error(`could not spawn ${options.name} (${options.entry})`, { cause: error })));
  });
  const pid = child.pid ?? 0;

  const forget = killOnExit(pid);
  const pidFile = path.join(inject('infra').processDir, String(pid));
  writeFileSync(pidFile, entry);

  let output = '';
  const listeners = new Set<() => void>();
  const onLine = (line: string): void => {
    output += `${line}\n`;
    if (ECHO) process.stdout.write(`[${options.name}] ${line}\n`);
    for (const listener of listeners) listener();
  };
  forEachLine(child.stdout, onLine);
  forEachLine(child.stderr, onLine);

  // 'close' rather than 'exit': it comes after the last output line, so output() is complete by then.
  const exited = new Promise<number | null>((resolve) => child.once('close', (code: number | null) => resolve(code)));
  let gone = false;

  const role: RoleProcess = {
    pid,
    output: () => output,
    waitForOutput: (pattern, timeoutMs = 30_000) => {
      const once = new RegExp(pattern.source, pattern.flags.replace('g', ''));
      return new Promise<string>((resolve, reject) => {
        const finish = (error?: Error, match?: string): void => {
          clearTimeout(timer);
          listeners.delete(check);
          if (error) reject(error);
          else resolve(match ?? '');
        };
        const check = (): void => {
          const match = once.exec(output);
          if (match) finish(undefined, match[0]);
          else if (gone) finish(new Error(`${options.name} exited before printing ${pattern}:\n${output}`));
        };
        const timer = setTimeout(
          () => finish(new Error(`${options.name} did not print ${pattern} within ${timeoutMs} ms:\n${output}`)),
          timeoutMs,
        );
        listeners.add(check);
        check();
      });
    },
    kill: (signal = 'SIGTERM') => {
      if (isRunning(child)) child.kill(signal);
    },
    exited,
    stop: async () => {
      await terminate(child, { killAfterMs: STOP_TIMEOUT_MS });
    },
  };
  running.add(role);

  void waitForExit(child).then(() => {
    forget();
    rmSync(pidFile, { force: true });
    running.delete(role);
  });
  void exited.then(() => {
    gone = true;
    for (const listener of listeners) listener();
  });
  return role;
}

/** Stops every role this test file started; for `afterAll`. */
export async function stopAllRoles(): Promise<void> {
  await Promise.all([...running].map((role) => role.stop()));
}

/** The live path's roles as processes: relay, projector, fan-out, and one gateway per port. */
export type ChatRoles = {
  readonly relay: RoleProcess;
  readonly projector: RoleProcess;
  readonly fanout: RoleProcess;
  readonly gateways: readonly RoleProcess[];
};

/**
 * Starts the relay, the projector, the fan-out and a gateway on each of `gatewayPorts`, all with `env`, and
 * resolves once each is at work: the gateways listening, the relay leading, the projector projecting, the
 * fan-out fanning out (its durable starts at the stream's end when first created: append nothing before).
 */
export async function startChatRoles(env: Readonly<Record<string, string>>, gatewayPorts: readonly number[]): Promise<ChatRoles> {
  const relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
  const projector = await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env });
  const fanout = await spawnRole({ name: 'fanout', entry: 'src/fanout/main.ts', env });
  const gateways = await Promise.all(
    gatewayPorts.map((port, index) =>
      spawnRole({ name: gatewayPorts.length === 1 ? 'gateway' : `gateway-${index}`, entry: 'src/gateway/main.ts', env: { ...env, PORT: String(port) } }),
    ),
  );
  for (const gateway of gateways) await gateway.waitForOutput(/gateway listening/, 90_000);
  await relay.waitForOutput(/leadership acquired/);
  await projector.waitForOutput(/projecting/);
  await fanout.waitForOutput(/fanning out/);
  return { relay, projector, fanout, gateways };
}
