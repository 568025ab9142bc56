/**
 * Whether and when `npm start` runs a role again after its process exits: a pure state machine, no IO and
 * no clock of its own (the supervisor passes `now` and owns the timer).
 *
 * States:
 * - `running`: the process is up, since `since`;
 * - `waiting`: it exited on its own; it is started again at `until`;
 * - `stopping`: the stack is stopping and the process is still up; its exit starts nothing;
 * - `stopped`: down for good.
 *
 * Backoff: the first restart waits `initialDelayMs`, each further one twice the one before, up to
 * `maxDelayMs`; a process that stayed up `stableAfterMs` or longer starts the doubling over.
 */

export type RestartOptions = {
  readonly initialDelayMs: number;
  readonly maxDelayMs: number;
  readonly stableAfterMs: number;
};

export const DEFAULT_RESTART_OPTIONS: RestartOptions = { initialDelayMs: 500, maxDelayMs: 30_000, stableAfterMs: 30_000 };

type Counts = {
  /** Exits since the process last stayed up `stableAfterMs`: the exponent of the next delay. */
  readonly crashes: number;
  /** Restarts since the stack started, for the log. */
  readonly restarts: number;
};

export type RoleLife =
  | (Counts & { readonly state: 'running'; readonly since: number })
  | (Counts & { readonly state: 'waiting'; readonly until: number })
  | { readonly state: 'stopping' }
  | { readonly state: 'stopped' };

export type RoleEvent =
  | { readonly type: 'exited'; readonly now: number }
  | { readonly type: 'restart-due'; readonly now: number }
  | { readonly type: 'stop' };

/** What the supervisor does next. */
export type RoleAction =
  | { readonly kind: 'none' }
  | { readonly kind: 'restart-later'; readonly delayMs: number; readonly restart: number }
  | { readonly kind: 'spawn' }
  | { readonly kind: 'cancel-restart' };

const NONE: RoleAction = { kind: 'none' };

/** A role whose process was just started for the first time. */
export function startedAt(now: number): RoleLife {
  return { state: 'running', since: now, crashes: 0, restarts: 0 };
}

export function nextLife(
  life: RoleLife,
  event: RoleEvent,
  options: RestartOptions = DEFAULT_RESTART_OPTIONS,
): { readonly life: RoleLife; readonly action: RoleAction } {
  switch (event.type) {
    case 'exited':
      return exited(life, event.now, options);
    case 'restart-due':
      if (life.state !== 'waiting') return { life, action: NONE };
      return { life: { state: 'running', since: event.now, crashes: life.crashes, restarts: life.restarts }, action: { kind: 'spawn' } };
    case 'stop':
      switch (life.state) {
        case 'running':
          return { life: { state: 'stopping' }, action: NONE };
        case 'waiting':
          return { life: { state: 'stopped' }, action: { kind: 'cancel-restart' } };
        case 'stopping':
        case 'stopped':
          return { life, action: NONE };
        default:
          return unreachable(life);
      }
    default:
      return unreachable(event);
  }
}

function exited(life: RoleLife, now: number, options: RestartOptions): { readonly life: RoleLife; readonly action: RoleAction } {
  switch (life.state) {
    case 'running': {
      const stayedUp = now - life.since >= options.stableAfterMs;
      const crashes = (stayedUp ? 0 : life.crashes) + 1;
      const delayMs = Math.min(options.initialDelayMs * 2 ** (crashes - 1), options.maxDelayMs);
      const restart = life.restarts + 1;
      return { life: { state: 'waiting', until: now + delayMs, crashes, restarts: restart }, action: { kind: 'restart-later', delayMs, restart } };
    }
    case 'stopping':
      return { life: { state: 'stopped' }, action: NONE };
    // No process runs in these states, so no exit can come; should one, it changes nothing.
    case 'waiting':
    case 'stopped':
      return { life, action: NONE };
    default:
      return unreachable(life);
  }
}

function unreachable(value: never): never {
  throw new Error(`unexpected ${JSON.stringify(value)}`);
}
