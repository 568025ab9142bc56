import { describe, expect, it } from 'vitest';
import { classifyClose, initialState, transition, type MachineEvent, type MachineState } from './connection-machine.js';

const run = (events: readonly MachineEvent[], from: MachineState = initialState) => {
  let state = from;
  const effects: string[] = [];
  for (const event of events) {
    const next = transition(state, event);
    state = next.state;
    effects.push(...next.effects.map((effect) => (effect.type === 'scheduleRetry' ? `scheduleRetry(${effect.attempt})` : effect.type)));
  }
  return { state, effects };
};

const open: MachineEvent[] = [{ type: 'connect' }, { type: 'socketOpened' }, { type: 'connected' }];
const lost = (code = 1006): MachineEvent => ({ type: 'socketClosed', code, reason: '' });

describe('the connection machine', () => {
  it('connects: open the socket, send auth, go online on `connected`', () => {
    expect(run(open)).toEqual({ state: { phase: 'open', attempt: 0, authRejections: 0 }, effects: ['openSocket', 'sendAuth', 'goOnline'] });
  });

  it('reconnects after a lost socket with a backoff whose attempt grows until connected, then starts over', () => {
    const { state, effects } = run([...open, lost(), { type: 'retryDue' }, lost(1011), { type: 'retryDue' }, lost(1012)]);
    expect(state).toEqual({ phase: 'reconnecting', attempt: 3, authRejections: 0 });
    expect(effects.slice(3)).toEqual(['goOffline', 'scheduleRetry(0)', 'openSocket', 'scheduleRetry(1)', 'openSocket', 'scheduleRetry(2)']);

    const after = run([{ type: 'socketOpened' }, { type: 'retryDue' }, { type: 'socketOpened' }, { type: 'connected' }, lost()], state);
    expect(after.state).toEqual({ phase: 'reconnecting', attempt: 1, authRejections: 0 });
    expect(after.effects.at(-1)).toBe('scheduleRetry(0)');
  });

  it('answers a 4401 by reopening at once (a new token), and a second 4401 in a row by closing with a failure', () => {
    const first = run([...open, lost(4401)]);
    expect(first.state.phase).toBe('reconnecting');
    expect(first.effects.slice(3)).toEqual(['goOffline', 'openSocket']);
    const second = run([{ type: 'socketOpened' }, lost(4401)], first.state);
    expect(second.state.phase).toBe('closed');
    expect(second.effects).toEqual(['sendAuth', 'fail']);
  });

  it('forgets an earlier 4401 once connected again', () => {
    const { state } = run([...open, lost(4401), { type: 'socketOpened' }, { type: 'connected' }, lost(4401)]);
    expect(state).toEqual({ phase: 'reconnecting', attempt: 0, authRejections: 1 });
  });

  it('takes 1008 and unknown 4xxx codes as final, 4008 and 4429 as passing', () => {
    expect(run([...open, lost(1008)]).state.phase).toBe('closed');
    expect(run([...open, lost(4999)]).state.phase).toBe('closed');
    expect(run([...open, lost(4008)]).state.phase).toBe('reconnecting');
    expect(run([...open, lost(4429)]).state.phase).toBe('reconnecting');
    expect(['unauthorized', 'retry', 'retry', 'retry', 'final'].map(String)).toEqual([4401, 1006, 1011, 1012, 1008].map(classifyClose));
  });

  it('replaces a stalled socket: discards it, goes offline, retries after the backoff', () => {
    const { state, effects } = run([...open, { type: 'stalled' }]);
    expect(state.phase).toBe('reconnecting');
    expect(effects.slice(3)).toEqual(['discardSocket', 'goOffline', 'scheduleRetry(0)']);
  });

  it('a socket that fails before `connected` backs off from connecting too', () => {
    const { state, effects } = run([{ type: 'connect' }, lost(), { type: 'retryDue' }]);
    expect(state).toEqual({ phase: 'reconnecting', attempt: 1, authRejections: 0 });
    expect(effects).toEqual(['openSocket', 'scheduleRetry(0)', 'openSocket']);
  });

  it('close ends it from any phase and nothing moves it afterwards', () => {
    const { state, effects } = run([...open, { type: 'close' }, { type: 'connect' }, { type: 'retryDue' }, lost()]);
    expect(state.phase).toBe('closed');
    expect(effects.slice(3)).toEqual(['cancelRetry', 'discardSocket', 'goOffline']);
  });

  it('ignores events that do not belong to the phase', () => {
    expect(run([{ type: 'connected' }, { type: 'retryDue' }])).toEqual({ state: initialState, effects: [] });
    expect(run([...open, { type: 'connect' }, { type: 'retryDue' }]).effects).toEqual(['openSocket', 'sendAuth', 'goOnline']);
  });
});
