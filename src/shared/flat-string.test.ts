import { describe, expect, it } from 'vitest';
import { flatString } from './flat-string.js';

describe('flatString', () => {
  it('returns the same text', () => {
    const built = `${'chat'}.to.${12345}.*`;
    expect(flatString(built)).toBe('chat.to.12345.*');
    expect(flatString('')).toBe('');
  });
});
