import { describe, expect, it } from 'vitest';
import { createHopTimes, hopClock, hopKey } from './hop-times.js';

describe('hop times', () => {
  it('keeps nothing when the capacity is 0', () => {
    const times = createHopTimes(0);
    times.mark('c:1', 'committed', 5);
    expect(times.enabled).toBe(false);
    expect(times.records()).toEqual({});
  });

  it('gathers the points of one event under its key, a point marked again taking the later time', () => {
    const times = createHopTimes(10);
    times.mark(hopKey('conv', 7), 'batch_started', 1);
    times.mark(hopKey('conv', 7), 'committed', 2);
    times.mark(hopKey('conv', 8), 'committed', 3);
    times.mark(hopKey('conv', 7), 'committed', 4);
    expect(times.enabled).toBe(true);
    expect(times.records()).toEqual({ 'conv:7': { batch_started: 1, committed: 4 }, 'conv:8': { committed: 3 } });
  });

  it('keeps the first time of a point marked with markFirst', () => {
    const times = createHopTimes(10);
    times.markFirst('a', 'socket_written', 5);
    times.markFirst('a', 'socket_written', 9);
    times.mark('a', 'delivery_received', 7);
    times.markFirst('a', 'delivery_received', 8);
    expect(times.records()).toEqual({ a: { socket_written: 5, delivery_received: 7 } });
  });

  it('forgets the oldest event beyond its capacity, however recently it was marked', () => {
    const times = createHopTimes(2);
    times.mark('a', 'relay_read', 1);
    times.mark('b', 'relay_read', 2);
    times.mark('a', 'relay_acked', 3);
    times.mark('c', 'relay_read', 4);
    expect(Object.keys(times.records())).toEqual(['b', 'c']);
  });

  it('marks with the shared clock when no time is given', () => {
    const times = createHopTimes(1);
    const before = hopClock();
    times.mark('a', 'socket_written');
    const at = times.records()['a']?.socket_written ?? Number.NaN;
    expect(at).toBeGreaterThanOrEqual(before);
    expect(at).toBeLessThanOrEqual(hopClock());
    // The same clock as Date's, to within the drift of a process's monotonic clock.
    expect(Math.abs(at - Date.now())).toBeLessThan(1_000);
  });

  it('refuses a capacity that is not a non-negative integer', () => {
    expect(() => createHopTimes(-1)).toThrow(/capacity/);
    expect(() => createHopTimes(1.5)).toThrow(/capacity/);
  });
});
