import { compareFeedPositions, formatFeedPosition, parseFeedPosition, type FeedPosition } from '../event-store/recorded-event.js';

/**
 * The resume cursor clients hold: the event's feed position `(transaction_id, global_position)`, as
 * base64url of `"<tx>:<pos>"`. Clients must treat it as opaque; encoding it keeps them from parsing or
 * building one, so the position's form can change without breaking them.
 */

const MAX_XID8 = 2n ** 64n - 1n;
const MAX_BIGINT = 2n ** 63n - 1n;
/** base64url of the longest position text (20 + 1 + 19 characters). */
const CURSOR_PATTERN = /^[A-Za-z0-9_-]{1,56}$/;

export function encodeCursor(position: FeedPosition): string {
  return Buffer.from(formatFeedPosition(position), 'utf8').toString('base64url');
}

/**
 * @returns the feed position of a cursor made by `encodeCursor`, or null for anything else (wrong
 * alphabet, non-canonical encoding, numbers out of the range of `xid8`/`bigint`). Never throws: the input
 * comes straight from clients.
 */
export function decodeCursor(cursor: string): FeedPosition | null {
  if (typeof cursor !== 'string' || !CURSOR_PATTERN.test(cursor)) return null;
  const position = parseFeedPosition(Buffer.from(cursor, 'base64url').toString('utf8'));
  if (!position || position.transactionId > MAX_XID8 || position.globalPosition > MAX_BIGINT) return null;
  // Node's decoder ignores stray bits and characters; only the canonical form of a position is a cursor.
  return encodeCursor(position) === cursor ? position : null;
}

/**
 * Orders two cursors by feed position: negative when `a` comes first, 0 when equal, positive after.
 * @throws Error when either is not a valid cursor (callers compare cursors they made or already decoded).
 */
export function compareCursors(a: string, b: string): number {
  const left = decodeCursor(a);
  const right = decodeCursor(b);
  if (!left || !right) throw new Error('compareCursors: not a cursor');
  return compareFeedPositions(left, right);
}
