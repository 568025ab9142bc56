import { describe, expect, it } from 'vitest';
import { nextLife, startedAt, type RestartOptions, type RoleAction, type RoleEvent, type RoleLife } from './restart-policy.js';

const OPTIONS: RestartOptions = { initialDelayMs: 500, maxDelayMs: 30_000, stableAfterMs: 30_000 };

/** Feeds `events` in order from `life`; returns the last state and every action. */
function run(life: RoleLife, events: readonly RoleEvent[]): { life: RoleLife; actions: RoleAction[] } {
  const actions: RoleAction[] = [];
  for (const event of events) {
    const next = nextLife(life, event, OPTIONS);
    life = next.life;
    actions.push(next.action);
  }
  return { life, actions };
}

/** A role that crashes `times` times, each restart due exactly when asked, each run lasting `upMs`. */
function crashLoop(times: number, upMs: number): { life: RoleLife; actions: RoleAction[] } {
  let now = 0;
  let life = startedAt(now);
  const actions: RoleAction[] = [];
  for (let i = 0; i < times; i += 1) {
    now += upMs;
    const exit = nextLife(life, { type: 'exited', now }, OPTIONS);
    actions.push(exit.action);
    if (exit.action.kind !== 'restart-later') break;
    now += exit.action.delayMs;
    const due = nextLife(exit.life, { type: 'restart-due', now }, OPTIONS);
    actions.push(due.action);
    life = due.life;
  }
  return { life, actions };
}

const delays = (actions: readonly RoleAction[]): number[] =>
  actions.flatMap((action) => (action.kind === 'restart-later' ? [action.delayMs] : []));

describe('restart policy', () => {
  it('given a running role, when it exits, then it is started again after the initial delay', () => {
    const { life, actions } = run(startedAt(1_000), [{ type: 'exited', now: 2_000 }]);
    expect(actions).toEqual([{ kind: 'restart-later', delayMs: 500, restart: 1 }]);
    expect(life).toEqual({ state: 'waiting', until: 2_500, crashes: 1, restarts: 1 });
  });

  it('given a waiting role, when its restart is due, then it is spawned and running from then', () => {
    const { life, actions } = run(startedAt(0), [
      { type: 'exited', now: 100 },
      { type: 'restart-due', now: 600 },
    ]);
    expect(actions[1]).toEqual({ kind: 'spawn' });
    expect(life).toEqual({ state: 'running', since: 600, crashes: 1, restarts: 1 });
  });

  it('doubles the delay on each quick crash, up to the maximum', () => {
    expect(delays(crashLoop(10, 100).actions)).toEqual([500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000, 30_000, 30_000]);
  });

  it('numbers the restarts from the start of the stack, whatever the delay', () => {
    const restarts = crashLoop(4, 100).actions.flatMap((action) => (action.kind === 'restart-later' ? [action.restart] : []));
    expect(restarts).toEqual([1, 2, 3, 4]);
  });

  it('starts the doubling over after a run that stayed up the stable time', () => {
    let life = crashLoop(3, 100).life;
    expect(life).toMatchObject({ state: 'running', crashes: 3 });
    const since = life.state === 'running' ? life.since : Number.NaN;
    const exit = nextLife(life, { type: 'exited', now: since + 30_000 }, OPTIONS);
    expect(exit.action).toEqual({ kind: 'restart-later', delayMs: 500, restart: 4 });
    life = exit.life;
    expect(life).toMatchObject({ crashes: 1 });
  });

  it('keeps doubling after a run just short of the stable time', () => {
    const life = crashLoop(3, 100).life;
    const since = life.state === 'running' ? life.since : Number.NaN;
    const exit = nextLife(life, { type: 'exited', now: since + 29_999 }, OPTIONS);
    expect(exit.action).toEqual({ kind: 'restart-later', delayMs: 4_000, restart: 4 });
  });

  it('given the stack stops while a role runs, its exit then starts nothing', () => {
    const { life, actions } = run(startedAt(0), [{ type: 'stop' }, { type: 'exited', now: 10 }]);
    expect(actions).toEqual([{ kind: 'none' }, { kind: 'none' }]);
    expect(life).toEqual({ state: 'stopped' });
  });

  it('given the stack stops while a restart waits, the restart is cancelled and a late timer spawns nothing', () => {
    const { life, actions } = run(startedAt(0), [
      { type: 'exited', now: 10 },
      { type: 'stop' },
      { type: 'restart-due', now: 510 },
    ]);
    expect(actions.slice(1)).toEqual([{ kind: 'cancel-restart' }, { kind: 'none' }]);
    expect(life).toEqual({ state: 'stopped' });
  });

  it('ignores a second stop and a restart that is not due', () => {
    const { life, actions } = run(startedAt(0), [{ type: 'restart-due', now: 5 }, { type: 'stop' }, { type: 'stop' }]);
    expect(actions).toEqual([{ kind: 'none' }, { kind: 'none' }, { kind: 'none' }]);
    expect(life).toEqual({ state: 'stopping' });
  });
});
