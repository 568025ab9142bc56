import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { describeExit, forEachLine, terminate, waitForExit, type ExitStatus } from './child-process.js';
import { killOnExit } from './kill-on-exit.js';
import { lineTag } from './line-tag.js';
import type { RoleSpec } from './roles.js';

export type RoleExit = ExitStatus & {
  readonly name: string;
  /** true when the exit followed `stopAll()`. */
  readonly expected: boolean;
};

export type Supervisor = {
  /** Spawns `node --import tsx <entry>` with exactly `env`; output lines are tagged `[name]`. */
  start(role: RoleSpec, env: NodeJS.ProcessEnv): void;
  /** SIGTERM to every running role, SIGKILL to those still alive after `timeoutMs`; resolves when all exited. */
  stopAll(timeoutMs?: number): Promise<void>;
};

/** Runs role processes; restarts nothing, reports every exit to `onExit`. */
export function createSupervisor(options: { readonly cwd: string; readonly onExit: (exit: RoleExit) => void }): Supervisor {
  const running = new Set<ChildProcess>();
  let stopping = false;

  return {
    start(role, env) {
      const tag = lineTag(role.name);
      const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(options.cwd, role.entry)], {
        cwd: options.cwd,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        // Signals reach a role only through stopAll(): a role treats a second signal as "exit now", and a
        // terminal's Ctrl-C would otherwise hit it directly as well.
        detached: true,
      });
      running.add(child);
      const forget = child.pid === undefined ? () => undefined : killOnExit(child.pid);
      forEachLine(child.stdout, (line) => process.stdout.write(`${tag} ${line}\n`));
      forEachLine(child.stderr, (line) => process.stderr.write(`${tag} ${line}\n`));
      void waitForExit(child).then((status) => {
        running.delete(child);
        forget();
        if (!stopping) process.stderr.write(`${tag} exited with ${describeExit(status)}\n`);
        options.onExit({ ...status, name: role.name, expected: stopping });
      });
    },
    async stopAll(timeoutMs = 10_000) {
      stopping = true;
      await Promise.all([...running].map((child) => terminate(child, { killAfterMs: timeoutMs })));
    },
  };
}
