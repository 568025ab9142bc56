import { describe, expect, it } from 'vitest';
import { createTypingThrottle } from './typing-throttle.js';

describe('createTypingThrottle', () => {
  it('forwards a change of state at once and repeats of a state once per interval, per user and conversation', () => {
    let now = 0;
    const throttle = createTypingThrottle({ intervalMs: 1_000, clock: () => new Date(now) });
    expect(throttle.shouldForward(1, 'c', true)).toBe(true);
    expect(throttle.shouldForward(1, 'c', true)).toBe(false);
    expect(throttle.shouldForward(2, 'c', true)).toBe(true);
    expect(throttle.shouldForward(1, 'd', true)).toBe(true);
    expect(throttle.shouldForward(1, 'c', false)).toBe(true);
    now = 999;
    expect(throttle.shouldForward(1, 'c', false)).toBe(false);
    now = 1_000;
    expect(throttle.shouldForward(1, 'c', false)).toBe(true);
  });
});
