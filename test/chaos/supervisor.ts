import { sleep } from '../../src/shared/sleep.js';
import { spawnRole, type RoleProcess } from '../support/processes.js';

const RESTART_DELAY_MS = 300;

/** A role kept running as systemd or Kubernetes would: a process that exits is started again. */
export type SupervisedRole = {
  readonly name: string;
  /** The process running now (a new one after each restart). */
  readonly process: RoleProcess;
  /** How many times a process of this role exited and another was started. */
  readonly restarts: number;
  /** Stops the role for good. */
  stop(): Promise<void>;
};

export async function superviseRole(options: {
  readonly name: string;
  readonly entry: string;
  readonly env: Readonly<Record<string, string>>;
}): Promise<SupervisedRole> {
  let current = await spawnRole(options);
  let restarts = 0;
  let stopping = false;
  const watch = (running: RoleProcess): void =>
    void running.exited.then(async () => {
      await sleep(RESTART_DELAY_MS);
      if (stopping) return;
      const next = await spawnRole(options);
      current = next;
      restarts++;
      if (stopping) await next.stop();
      else watch(next);
    });
  watch(current);
  return {
    name: options.name,
    get process() {
      return current;
    },
    get restarts() {
      return restarts;
    },
    stop: async () => {
      stopping = true;
      await current.stop();
    },
  };
}
