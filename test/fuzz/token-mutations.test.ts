import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { revocationKey } from '../../src/gateway/auth/revoked-tokens.js';
import { api, mintToken, startTestGateway, upgradeStatus, type TestGateway } from '../support/gateway.js';
import { createTestDatabase, testPrefix } from '../support/infra.js';
import { fitsInHeader } from '../support/token-spellings.js';

/**
 * Generated mutations of a valid token and of a revoked one against a real gateway: byte flips, case changes,
 * whitespace, padding, standard-base64 characters, re-encodings of a segment's bytes, unused bits, segment
 * swaps and duplicates, truncations. Property: a mutant is accepted only when it is byte for byte the valid,
 * unrevoked token. `FUZZ_RUNS=5000` for a long run.
 */

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 150);
const USER = 91;

let gateway: TestGateway;
let valid: string;
let revoked: string;

beforeAll(async () => {
  gateway = await startTestGateway({ databaseUrl: await createTestDatabase(), prefix: testPrefix() });
  valid = await mintToken(USER);
  revoked = await mintToken(USER);
  await gateway.redis.set(revocationKey(revoked), '1', 'EX', 3_600);
});
afterAll(async () => {
  await gateway?.close();
});

const BASE64URL = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const WHITESPACE = [' ', '\t', '\n', '\r', '\f', '\v', '\u00a0', '\u2028', '\u3000', '\ufeff'];

type Mutation = (token: string) => string;

const at = (text: string, position: number): number => (text.length === 0 ? 0 : position % (text.length + 1));
const splice = (text: string, position: number, remove: number, insert: string): string => {
  const index = at(text, position);
  return text.slice(0, index) + insert + text.slice(index + remove);
};
const onSegment = (segment: number, change: (text: string) => string): Mutation => (token) =>
  token
    .split('.')
    .map((text, index) => (index === segment ? change(text) : text))
    .join('.');

const position = fc.nat({ max: 4_096 });
const segment = fc.integer({ min: 0, max: 2 });

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  // A character replaced by another base64url one, or by anything.
  fc.tuple(position, fc.constantFrom(...BASE64URL)).map(([p, c]): Mutation => (t) => splice(t, p, 1, c)),
  fc.tuple(position, fc.string({ unit: 'binary', minLength: 1, maxLength: 2 })).map(([p, c]): Mutation => (t) => splice(t, p, 1, c)),
  // A bit flipped in a character's code.
  fc.tuple(position, fc.integer({ min: 0, max: 6 })).map(([p, bit]): Mutation => (t) => {
    const index = at(t, p) % Math.max(1, t.length);
    return splice(t, index, 1, String.fromCharCode((t.charCodeAt(index) || 65) ^ (1 << bit)));
  }),
  // Case changes: one character, or all.
  position.map((p): Mutation => (t) => {
    const index = at(t, p) % Math.max(1, t.length);
    const c = t.charAt(index);
    return splice(t, index, 1, c === c.toUpperCase() ? c.toLowerCase() : c.toUpperCase());
  }),
  fc.constantFrom<Mutation>((t) => t.toUpperCase(), (t) => t.toLowerCase()),
  // Whitespace anywhere, around the whole, or padding on a segment.
  fc.tuple(position, fc.constantFrom(...WHITESPACE)).map(([p, w]): Mutation => (t) => splice(t, p, 0, w)),
  fc.constantFrom(...WHITESPACE).map((w): Mutation => (t) => `${w}${t}${w}`),
  fc.tuple(segment, fc.integer({ min: 1, max: 3 })).map(([s, n]): Mutation => onSegment(s, (x) => x + '='.repeat(n))),
  // Standard base64 alphabet, or the segment's bytes re-encoded as standard base64 (with padding).
  fc.constant<Mutation>((t) => t.replace(/-/g, '+').replace(/_/g, '/')),
  segment.map((s): Mutation => onSegment(s, (x) => Buffer.from(x, 'base64url').toString('base64'))),
  // The unused low bits of a segment's last character.
  fc.tuple(segment, fc.integer({ min: 1, max: 15 })).map(([s, bits]): Mutation =>
    onSegment(s, (x) => {
      const last = BASE64URL.indexOf(x.at(-1) ?? 'A');
      return x.slice(0, -1) + (BASE64URL[(last ^ bits) & 63] ?? 'A');
    }),
  ),
  // Segments swapped, duplicated, dropped or added; the token cut short or extended.
  fc.constantFrom<Mutation>(
    (t) => { const [h, p, s] = t.split('.'); return [p, h, s].join('.'); },
    (t) => { const [h, p, s] = t.split('.'); return [h, s, p].join('.'); },
    (t) => { const [h, p] = t.split('.'); return [h, p, p].join('.'); },
    (t) => t.split('.').slice(0, 2).join('.'),
    (t) => `${t}.`,
    (t) => `${t}.${t.split('.')[2]}`,
    (t) => t.replace(/\./g, '..'),
  ),
  position.map((p): Mutation => (t) => t.slice(0, at(t, p))),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 3 }).map((extra): Mutation => (t) => t + extra),
);

/** Two mutations in a row now and then; the identity now and then, to check the oracle itself. */
const mutations = fc.oneof(
  { weight: 8, arbitrary: mutation },
  { weight: 2, arbitrary: fc.tuple(mutation, mutation).map(([a, b]): Mutation => (t) => b(a(t))) },
  { weight: 1, arbitrary: fc.constant<Mutation>((t) => t) },
);

/** True when the gateway let `token` in: REST when it fits in a header, else `?token=` on the upgrade. */
async function accepted(token: string): Promise<boolean> {
  if (fitsInHeader(token)) {
    const response = await api(gateway.url, 'GET', '/api/v1/chat/conversations', { headers: { authorization: `Bearer ${token}` } });
    expect([200, 401], `${JSON.stringify(token)}: ${response.status}`).toContain(response.status);
    return response.status === 200;
  }
  // A lone surrogate (the binary-string mutation) has no UTF-8 spelling for the URL: send U+FFFD for it, as a
  // browser would; the token is still not the valid one.
  const status = await upgradeStatus(`${gateway.wsUrl}?token=${encodeURIComponent(token.replace(/\p{Cs}/gu, '\uFFFD'))}`);
  expect([101, 401], `${JSON.stringify(token)}: ${status}`).toContain(status);
  return status === 101;
}

describe('mutated tokens', () => {
  it('lets a mutant of the valid token in only when it is the valid token, byte for byte', async () => {
    await fc.assert(
      fc.asyncProperty(mutations, async (mutate) => {
        const mutant = mutate(valid);
        expect(await accepted(mutant), JSON.stringify(mutant)).toBe(mutant === valid);
      }),
      { numRuns: RUNS },
    );
  });

  it('never lets a mutant of a revoked token in', async () => {
    await fc.assert(
      fc.asyncProperty(mutations, async (mutate) => {
        const mutant = mutate(revoked);
        expect(await accepted(mutant), JSON.stringify(mutant)).toBe(mutant === valid);
      }),
      { numRuns: RUNS },
    );
  });
});
