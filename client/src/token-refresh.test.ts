import { describe, expect, it } from 'vitest';
import { fakeToken } from '../test/fake-websocket.js';
import { MIN_REFRESH_INTERVAL_MS, refreshDelayMs, tokenExpiryMs } from './token-refresh.js';

describe('tokenExpiryMs', () => {
  it('reads exp from the base64url payload, in milliseconds', () => {
    expect(tokenExpiryMs(fakeToken(1_900_000_000))).toBe(1_900_000_000_000);
  });

  it('decodes payloads whose base64url uses - and _ (not standard base64)', () => {
    // A nonce chosen so that the payload's encoding holds both '-' and '_'.
    const token = fakeToken(1_900_000_000, '42', '??>>~~ÿþ');
    expect(token.split('.')[1]).toMatch(/[-_]/);
    expect(tokenExpiryMs(token)).toBe(1_900_000_000_000);
  });

  it('is null for a token without exp or that is not a JWT', () => {
    expect(tokenExpiryMs('not a token')).toBeNull();
    expect(tokenExpiryMs('a.%%%.c')).toBeNull();
    expect(tokenExpiryMs(`x.${btoa('{"sub":"1"}')}.y`)).toBeNull();
  });
});

describe('refreshDelayMs', () => {
  const now = 1_800_000_000_000;

  it('is refreshBefore ahead of exp', () => {
    expect(refreshDelayMs(fakeToken(now / 1000 + 3_600), now, 60_000)).toBe(3_540_000);
  });

  it('waits at least the minimum interval for a token already inside its window', () => {
    expect(refreshDelayMs(fakeToken(now / 1000 + 30), now, 60_000)).toBe(MIN_REFRESH_INTERVAL_MS);
  });

  it('is null when the token has no exp', () => {
    expect(refreshDelayMs('a.b.c', now, 60_000)).toBeNull();
  });
});
