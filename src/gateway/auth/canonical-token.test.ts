import { describe, expect, it } from 'vitest';
import { respellings } from '../../../test/support/token-spellings.js';
import { isCanonicalCompactToken } from './canonical-token.js';

const base64url = (text: string) => Buffer.from(text).toString('base64url');
/** A compact JWS shape: HS256 signatures are 32 bytes, 43 characters with 2 unused bits. */
const TOKEN = `${base64url('{"alg":"HS256"}')}.${base64url('{"sub":"42","exp":2000000000}')}.${Buffer.alloc(32, 7).toString('base64url')}`;

describe('isCanonicalCompactToken', () => {
  it('accepts three base64url segments, each the encoding of its own bytes', () => {
    expect(isCanonicalCompactToken(TOKEN)).toBe(true);
    expect(isCanonicalCompactToken('a-_A.Zz09.AA')).toBe(true);
  });

  it.each(respellings(TOKEN).map((spelling) => [spelling.name, spelling.text] as const))('refuses a re-spelling: %s', (_, text) => {
    expect(isCanonicalCompactToken(text)).toBe(false);
  });

  it('refuses standard base64, other segment counts, empty segments and a segment of 4n+1 characters', () => {
    const [header, payload, signature] = TOKEN.split('.') as [string, string, string];
    for (const token of [
      `${header}.${payload}.${signature.replace(/./, '+')}`,
      `${header}.${payload}.${signature.replace(/./, '/')}`,
      `${header}.${payload}`,
      `${TOKEN}.${signature}`,
      `${header}..${signature}`,
      `.${payload}.${signature}`,
      `${header}.${payload}.`,
      `${header}.${payload}.AAAAA`,
      '',
    ]) {
      expect(isCanonicalCompactToken(token), JSON.stringify(token)).toBe(false);
    }
  });

  it('accepts 8 KiB and refuses one character more', () => {
    // Runs of 'A' of 2 or 3 characters mod 4 are canonical (all bits zero).
    const ofLength = (length: number) => `${'A'.repeat(length - 6)}.AA.AA`;
    expect(ofLength(8_192)).toHaveLength(8_192);
    expect(isCanonicalCompactToken(ofLength(8_192))).toBe(true);
    expect(isCanonicalCompactToken(ofLength(8_193))).toBe(false);
  });
});
