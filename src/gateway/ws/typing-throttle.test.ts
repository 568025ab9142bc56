import { describe, expect, it } from 'vitest';
import { createTypingThrottle } from './typing-throttle.js';

describe('createTypingThrottle', () => {
  it('forwards at most twice per interval per user and conversation, whatever the state says', () => {
    let now = 0;
    const throttle = createTypingThrottle({ intervalMs: 1_000, perInterval: 2, clock: () => new Date(now) });
    // Alternating true/false is no way around it: every call counts.
    expect(throttle.shouldForward(1, 'c')).toBe(true);
    now = 10;
    expect(throttle.shouldForward(1, 'c')).toBe(true);
    now = 20;
    expect(throttle.shouldForward(1, 'c')).toBe(false);
    // Other users and other conversations have their own allowance.
    expect(throttle.shouldForward(2, 'c')).toBe(true);
    expect(throttle.shouldForward(1, 'd')).toBe(true);
    // The window slides: one slot frees when the first forward is an interval old, the second 10 ms later.
    now = 999;
    expect(throttle.shouldForward(1, 'c')).toBe(false);
    now = 1_000;
    expect(throttle.shouldForward(1, 'c')).toBe(true);
    expect(throttle.shouldForward(1, 'c')).toBe(false);
    now = 1_010;
    expect(throttle.shouldForward(1, 'c')).toBe(true);
  });

  it('never forwards more than twice in any one-second window of a flood', () => {
    let now = 0;
    const throttle = createTypingThrottle({ intervalMs: 1_000, perInterval: 2, clock: () => new Date(now) });
    const times: number[] = [];
    for (now = 0; now < 10_000; now += 7) if (throttle.shouldForward(1, 'c')) times.push(now);
    for (let i = 2; i < times.length; i++) expect(times[i]! - times[i - 2]!).toBeGreaterThanOrEqual(1_000);
    expect(times.length).toBeGreaterThanOrEqual(19);
  });
});
