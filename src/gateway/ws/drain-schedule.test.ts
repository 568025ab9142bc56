import { describe, expect, it } from 'vitest';
import { drainSchedule } from './drain-schedule.js';

const total = (schedule: ReturnType<typeof drainSchedule>) => schedule.reduce((sum, tick) => sum + tick.count, 0);

describe('drainSchedule', () => {
  it('spreads many sockets evenly over the window, one tick apart, from 0 to the last tick before its end', () => {
    const schedule = drainSchedule(1_000, 10_000, 50);
    expect(schedule).toHaveLength(200);
    expect(total(schedule)).toBe(1_000);
    expect(schedule.map((tick) => tick.count)).toEqual(Array(200).fill(5));
    expect(schedule[0]!.atMs).toBe(0);
    expect(schedule.at(-1)!.atMs).toBe(9_950);
    expect(schedule.every((tick, i) => i === 0 || tick.atMs - schedule[i - 1]!.atMs === 50)).toBe(true);
  });

  it('keeps counts within one of each other when they do not divide', () => {
    const schedule = drainSchedule(1_003, 1_000, 100);
    expect(total(schedule)).toBe(1_003);
    const counts = schedule.map((tick) => tick.count);
    expect(Math.max(...counts) - Math.min(...counts)).toBe(1);
  });

  it('gives fewer sockets than ticks one tick each, still over the whole window', () => {
    expect(drainSchedule(4, 10_000, 50)).toEqual([
      { atMs: 0, count: 1 },
      { atMs: 2_500, count: 1 },
      { atMs: 5_000, count: 1 },
      { atMs: 7_500, count: 1 },
    ]);
  });

  it('closes everything at once for a window of 0 or shorter than a tick, and nothing when there is nothing', () => {
    expect(drainSchedule(7, 0)).toEqual([{ atMs: 0, count: 7 }]);
    expect(drainSchedule(7, 30, 50)).toEqual([{ atMs: 0, count: 7 }]);
    expect(drainSchedule(0, 10_000)).toEqual([]);
  });
});
