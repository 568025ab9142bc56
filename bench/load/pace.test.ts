import { describe, expect, it } from 'vitest';
import { nowMs } from './content-tag.js';
import { paceOpenLoop } from './pace.js';

describe('the open-loop pacer', () => {
  it('hands each call its scheduled time, start + i / rate, and how late it is against it', async () => {
    const calls: { i: number; lateMs: number; scheduledAt: number; calledAt: number }[] = [];
    const startAt = nowMs() + 20;
    await paceOpenLoop({ startAt, rate: 200, total: 6 }, (i, lateMs, scheduledAt) => calls.push({ i, lateMs, scheduledAt, calledAt: nowMs() }));
    expect(calls.map((call) => call.i)).toEqual([0, 1, 2, 3, 4, 5]);
    calls.forEach((call) => {
      expect(call.scheduledAt).toBeCloseTo(startAt + call.i * 5, 9);
      expect(call.lateMs).toBeGreaterThanOrEqual(0);
      expect(call.calledAt - call.scheduledAt).toBeGreaterThanOrEqual(call.lateMs - 0.001);
    });
  });

  it('catches up at once on calls already due, each with its own schedule', async () => {
    const calls: { lateMs: number; scheduledAt: number }[] = [];
    const startAt = nowMs() - 100;
    await paceOpenLoop({ startAt, rate: 100, total: 3 }, (_, lateMs, scheduledAt) => calls.push({ lateMs, scheduledAt }));
    expect(calls.map((call) => call.scheduledAt)).toEqual([startAt, startAt + 10, startAt + 20]);
    expect(calls[0]!.lateMs - calls[2]!.lateMs).toBeCloseTo(20, 0);
  });
});
