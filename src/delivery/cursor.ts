import { compareFeedPositions, formatFeedPosition, parseFeedPosition, type FeedPosition } from '../event-store/recorded-event.js';

/**
 * The resume cursor clients hold: where a socket's frames stand, as base64url of `"<tx>:<pos>"` (the feed
 * position `(transaction_id, global_position)` of the ordered path) followed, when the fast path sent frames
 * ahead of that position, by `";<conversation>.<seq>,..."`: per conversation, the highest `seq` already sent
 * (the floors). A resume from it replays every event after the position except those at or below their
 * conversation's floor, so it neither misses nor repeats a frame (docs/delivery.md, "The fast path").
 * Clients must treat it as opaque; encoding it keeps them from parsing or building one, so its form can
 * change without breaking them.
 */

const MAX_XID8 = 2n ** 64n - 1n;
const MAX_BIGINT = 2n ** 63n - 1n;

/** Most conversations a cursor names a floor for: the gate sends no fast-path frame past it. */
export const MAX_CURSOR_FLOORS = 8;

/** base64url of the longest cursor text: a position (20 + 1 + 19 characters) and the floors. */
const CURSOR_PATTERN = /^[A-Za-z0-9_-]{1,600}$/;
/** Crockford base32, 26 characters: every conversation id is a ULID. */
const CONVERSATION_ID = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const SEQ = /^[1-9]\d{0,9}$/;
/** A stream version is a Postgres `integer`. */
const MAX_SEQ = 2 ** 31 - 1;

/** Per conversation, the highest `seq` a socket was sent ahead of its cursor's position. */
export type CursorFloors = ReadonlyMap<string, number>;

/** What a cursor says: everything up to `position` was sent, and in each conversation of `floors`, up to its seq. */
export type ResumePoint = { readonly position: FeedPosition; readonly floors: CursorFloors };

const NO_FLOORS: CursorFloors = new Map();

/** The cursor of a position with nothing sent ahead of it: the cursor of the event at that position. */
export function encodeCursor(position: FeedPosition): string {
  return encodeResumeCursor(position, NO_FLOORS);
}

/** The cursor of `position` with, per conversation, the highest `seq` sent ahead of it. */
export function encodeResumeCursor(position: FeedPosition, floors: CursorFloors): string {
  const suffix =
    floors.size === 0
      ? ''
      : `;${[...floors]
          .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
          .map(([conversationId, seq]) => `${conversationId}.${seq}`)
          .join(',')}`;
  return Buffer.from(`${formatFeedPosition(position)}${suffix}`, 'utf8').toString('base64url');
}

/**
 * @returns the position and floors of a cursor made by `encodeResumeCursor` or `encodeCursor`, or null for anything else (wrong
 * alphabet, non-canonical encoding or order, numbers out of the range of `xid8`/`bigint`, ids that are not
 * ULIDs, more than `MAX_CURSOR_FLOORS` floors). Never throws: the input comes straight from clients.
 */
export function decodeResumeCursor(cursor: string): ResumePoint | null {
  if (typeof cursor !== 'string' || !CURSOR_PATTERN.test(cursor)) return null;
  const [positionText = '', floorsText, ...rest] = Buffer.from(cursor, 'base64url').toString('utf8').split(';');
  if (rest.length > 0) return null;
  const position = parseFeedPosition(positionText);
  if (!position || position.transactionId > MAX_XID8 || position.globalPosition > MAX_BIGINT) return null;
  // A plain cursor (every frame of the ordered path carries one) decodes without a Map of its own.
  const floors = floorsText === undefined ? NO_FLOORS : parseFloors(floorsText);
  if (!floors) return null;
  // Node's decoder ignores stray bits and characters; only the canonical form is a cursor.
  return encodeResumeCursor(position, floors) === cursor ? { position, floors } : null;
}

/** `<conversation>.<seq>,...` as floors; null for anything but ULIDs and stream versions, each once, at most MAX_CURSOR_FLOORS. */
function parseFloors(text: string): CursorFloors | null {
  const floors = new Map<string, number>();
  for (const entry of text.split(',')) {
    const [conversationId = '', seq = '', ...extra] = entry.split('.');
    if (extra.length > 0 || !CONVERSATION_ID.test(conversationId) || !SEQ.test(seq) || floors.has(conversationId)) return null;
    if (Number(seq) > MAX_SEQ) return null;
    floors.set(conversationId, Number(seq));
  }
  return floors.size > MAX_CURSOR_FLOORS ? null : floors;
}

/** @returns the feed position of a cursor (see `decodeResumeCursor`), or null for anything that is not one. */
export function decodeCursor(cursor: string): FeedPosition | null {
  return decodeResumeCursor(cursor)?.position ?? null;
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
