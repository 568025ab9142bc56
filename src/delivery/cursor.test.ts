import { describe, expect, it } from 'vitest';
import { compareFeedPositions, FEED_START, type FeedPosition } from '../event-store/recorded-event.js';
import { compareCursors, decodeCursor, encodeCursor } from './cursor.js';

const positions: FeedPosition[] = [
  FEED_START,
  { transactionId: 1n, globalPosition: 1n },
  { transactionId: 741n, globalPosition: 12n },
  { transactionId: 741n, globalPosition: 13n },
  { transactionId: 742n, globalPosition: 2n },
  { transactionId: 2n ** 64n - 1n, globalPosition: 2n ** 63n - 1n },
];

describe('the resume cursor', () => {
  it('round-trips every feed position, up to the largest xid8 and bigint', () => {
    for (const position of positions) expect(decodeCursor(encodeCursor(position))).toEqual(position);
  });

  it('is opaque to clients: URL-safe characters only, not the position in clear', () => {
    const cursor = encodeCursor({ transactionId: 741n, globalPosition: 12n });
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(cursor).not.toContain('741');
  });

  it('decodes anything else to null, never throwing', () => {
    const base64url = (text: string) => Buffer.from(text).toString('base64url');
    const garbage: unknown[] = [
      '',
      ' ',
      'not a cursor',
      '741:12', // the position in clear
      base64url('741'),
      base64url('741:'),
      base64url(':12'),
      base64url('-1:12'),
      base64url('741:12:3'),
      base64url('0741:12'), // not the canonical form
      base64url(`${2n ** 64n}:1`), // beyond xid8
      base64url(`1:${2n ** 63n}`), // beyond bigint
      `${encodeCursor({ transactionId: 741n, globalPosition: 12n })}=`, // padding: not the canonical form
      `${encodeCursor({ transactionId: 741n, globalPosition: 12n })}!`,
      'A'.repeat(10_000),
      '\u0000',
      null,
      42,
      {},
    ];
    for (const text of garbage) expect(decodeCursor(text as string)).toBeNull();
  });

  it('orders cursors as their feed positions', () => {
    const cursors = positions.map(encodeCursor);
    for (const [i, a] of cursors.entries()) {
      for (const [j, b] of cursors.entries()) {
        expect(Math.sign(compareCursors(a, b))).toBe(Math.sign(compareFeedPositions(positions[i]!, positions[j]!)));
      }
    }
    expect(() => compareCursors(cursors[0]!, 'nope')).toThrow('compareCursors: not a cursor');
    expect(() => compareCursors('nope', cursors[0]!)).toThrow('compareCursors: not a cursor');
  });
});
