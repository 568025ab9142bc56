import { describe, expect, it } from 'vitest';
import { SeqGuard } from './seq-guard.js';

describe('SeqGuard', () => {
  it('accepts increasing seqs and drops any seq not above the last, per conversation', () => {
    const guard = new SeqGuard();
    expect([1, 2, 2, 3, 1, 4].map((seq) => guard.accept('a', seq))).toEqual([true, true, false, true, false, true]);
    expect(guard.accept('b', 1)).toBe(true);
    expect(guard.accept('b', 1)).toBe(false);
    expect(guard.lastSeq('a')).toBe(4);
  });

  it('accepts a jump forward (a blocked span) and then drops what is below it', () => {
    const guard = new SeqGuard();
    expect(guard.accept('a', 3)).toBe(true);
    expect(guard.accept('a', 9)).toBe(true);
    expect(guard.accept('a', 5)).toBe(false);
    expect(guard.accept('a', 10)).toBe(true);
  });
});
