import { describe, expect, it } from 'vitest';
import { backoffDelay } from './backoff.js';

const settings = { initialMs: 500, maxMs: 30_000 };

describe('backoffDelay', () => {
  it('doubles the cap with each attempt and jitters within [cap / 2, cap]', () => {
    const caps = [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000, 30_000];
    caps.forEach((cap, attempt) => {
      expect(backoffDelay(attempt, settings, () => 0)).toBe(cap / 2);
      expect(backoffDelay(attempt, settings, () => 0.999_999)).toBe(cap);
      expect(backoffDelay(attempt, settings, () => 0.5)).toBe(Math.round(cap * 0.75));
    });
  });

  it('stays within its bounds for any draw and any attempt, never above maxMs', () => {
    for (let attempt = 0; attempt < 80; attempt++) {
      for (const draw of [0, 0.1, 0.37, 0.5, 0.73, 0.999]) {
        const delay = backoffDelay(attempt, settings, () => draw);
        const cap = Math.min(settings.maxMs, settings.initialMs * 2 ** attempt);
        expect(delay).toBeGreaterThanOrEqual(cap / 2);
        expect(delay).toBeLessThanOrEqual(cap);
      }
    }
  });

  it('spreads clients: different draws give different waits', () => {
    const waits = new Set([0.1, 0.3, 0.5, 0.7, 0.9].map((draw) => backoffDelay(3, settings, () => draw)));
    expect(waits.size).toBe(5);
  });
});
