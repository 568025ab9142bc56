import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { describeExit, forEachLine, terminate, waitForExit } from './child-process.js';
import { killOnExit } from './kill-on-exit.js';
import { lineTag } from './line-tag.js';
import { DEFAULT_RESTART_OPTIONS, nextLife, startedAt, type RestartOptions, type RoleAction, type RoleEvent, type RoleLife } from './restart-policy.js';
import type { RoleSpec } from './roles.js';

export type Supervisor = {
  /** Spawns `node --import tsx <entry>` with exactly `env`; output lines are tagged `[name]`. */
  start(role: RoleSpec, env: NodeJS.ProcessEnv): void;
  /**
   * Restarts nothing from now on; SIGTERM to every running role, SIGKILL to those still alive after
   * `timeoutMs`; resolves when all exited.
   */
  stopAll(timeoutMs?: number): Promise<void>;
};

type Supervised = {
  readonly role: RoleSpec;
  readonly env: NodeJS.ProcessEnv;
  life: RoleLife;
  child: ChildProcess | undefined;
  timer: NodeJS.Timeout | undefined;
};

/**
 * Runs role processes and starts again, with backoff (restart-policy.ts), one that exits while the stack is
 * not stopping. Every start and every exit is reported through `report` (pids included).
 */
export function createSupervisor(options: {
  readonly cwd: string;
  readonly report: (line: string) => void;
  readonly restart?: RestartOptions;
  readonly clock?: () => number;
}): Supervisor {
  const restartOptions = options.restart ?? DEFAULT_RESTART_OPTIONS;
  const clock = options.clock ?? Date.now;
  const supervised = new Set<Supervised>();

  const spawnRole = (entry: Supervised): void => {
    const { role } = entry;
    const tag = lineTag(role.name);
    const child = spawn(process.execPath, ['--import', 'tsx', path.resolve(options.cwd, role.entry)], {
      cwd: options.cwd,
      env: entry.env,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Signals reach a role only through stopAll(): a role treats a second signal as "exit now", and a
      // terminal's Ctrl-C would otherwise hit it directly as well.
      detached: true,
    });
    entry.child = child;
    if (child.pid !== undefined) options.report(`${role.name} started (pid ${child.pid})`);
    const forget = child.pid === undefined ? () => undefined : killOnExit(child.pid);
    forEachLine(child.stdout, (line) => process.stdout.write(`${tag} ${line}\n`));
    forEachLine(child.stderr, (line) => process.stderr.write(`${tag} ${line}\n`));
    void waitForExit(child).then((status) => {
      forget();
      entry.child = undefined;
      const action = advance(entry, { type: 'exited', now: clock() });
      if (action.kind === 'restart-later') {
        options.report(`${role.name} exited with ${describeExit(status)}; restarting in ${action.delayMs} ms (restart ${action.restart})`);
      }
    });
  };

  const advance = (entry: Supervised, event: RoleEvent): RoleAction => {
    const next = nextLife(entry.life, event, restartOptions);
    entry.life = next.life;
    const { action } = next;
    switch (action.kind) {
      case 'restart-later':
        entry.timer = setTimeout(() => {
          entry.timer = undefined;
          advance(entry, { type: 'restart-due', now: clock() });
        }, action.delayMs);
        break;
      case 'spawn':
        spawnRole(entry);
        break;
      case 'cancel-restart':
        clearTimeout(entry.timer);
        entry.timer = undefined;
        break;
      case 'none':
        break;
      default:
        action satisfies never;
    }
    return action;
  };

  return {
    start(role, env) {
      const entry: Supervised = { role, env, life: startedAt(clock()), child: undefined, timer: undefined };
      supervised.add(entry);
      spawnRole(entry);
    },
    async stopAll(timeoutMs = 10_000) {
      for (const entry of supervised) advance(entry, { type: 'stop' });
      const children = [...supervised].flatMap((entry) => (entry.child ? [entry.child] : []));
      await Promise.all(children.map((child) => terminate(child, { killAfterMs: timeoutMs })));
    },
  };
}
