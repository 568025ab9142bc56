import { describe, expect, it } from 'vitest';
import { compareFeedPositions, FEED_START, type FeedPosition } from '../event-store/recorded-event.js';
import { compareCursors, decodeCursor, decodeResumeCursor, encodeCursor, encodeResumeCursor, MAX_CURSOR_FLOORS } from './cursor.js';

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

describe('a cursor with floors (the fast path ran ahead of its position)', () => {
  const position = { transactionId: 741n, globalPosition: 12n };
  const a = '01JD0000000000000000000000';
  const b = '01JD0000000000000000000001';
  const text = (cursor: string) => Buffer.from(cursor, 'base64url').toString('utf8');
  const base64url = (plain: string) => Buffer.from(plain).toString('base64url');

  it('round-trips the position and each conversation floor, in one canonical spelling', () => {
    const cursor = encodeResumeCursor(position, new Map([[b, 7], [a, 3]]));
    expect(text(cursor)).toBe(`741:12;${a}.3,${b}.7`);
    expect(decodeResumeCursor(cursor)).toEqual({ position, floors: new Map([[a, 3], [b, 7]]) });
    expect(decodeCursor(cursor)).toEqual(position);
  });

  it('without floors is the plain position cursor, which decodes with no floors', () => {
    expect(encodeResumeCursor(position, new Map())).toBe(encodeCursor(position));
    expect(decodeResumeCursor(encodeCursor(position))).toEqual({ position, floors: new Map() });
  });

  it('holds up to MAX_CURSOR_FLOORS floors, and refuses more', () => {
    const ids = Array.from({ length: MAX_CURSOR_FLOORS + 1 }, (_, i) => `01JD${String(i).padStart(22, '0')}`);
    const most = new Map(ids.slice(0, MAX_CURSOR_FLOORS).map((id) => [id, 1]));
    expect(decodeResumeCursor(encodeResumeCursor(position, most))?.floors).toEqual(most);
    expect(decodeResumeCursor(encodeResumeCursor(position, new Map(ids.map((id) => [id, 1]))))).toBeNull();
  });

  it('decodes any other spelling to null', () => {
    const garbage = [
      `741:12;${b}.7,${a}.3`, // not in order
      `741:12;${a}.3,${a}.4`, // a conversation twice
      `741:12;`,
      `741:12;${a}`,
      `741:12;${a}.`,
      `741:12;${a}.0`,
      `741:12;${a}.03`,
      `741:12;${a}.-3`,
      `741:12;${a}.2147483648`, // beyond a stream version
      `741:12;${a}.3;${b}.1`,
      `741:12;${a}.3.1`,
      `741:12;${a.toLowerCase()}.3`,
      `741:12;01JD000000000000000000000I.3`, // not Crockford base32
      `741:12;${a}.3,`,
    ];
    for (const plain of garbage) expect(decodeResumeCursor(base64url(plain)), plain).toBeNull();
  });
});
