import { z } from 'zod';

/** An event as the caller proposes it; the store assigns ids, versions and positions. */
export type NewEvent = {
  readonly type: string;
  readonly data: object;
  readonly metadata?: Record<string, unknown>;
};

/** Position in the global feed: the appending transaction's id, then the sequence number. */
export type FeedPosition = { readonly transactionId: bigint; readonly globalPosition: bigint };

export const FEED_START: FeedPosition = { transactionId: 0n, globalPosition: 0n };

/** An event as stored in the log. */
export type RecordedEvent = FeedPosition & {
  readonly streamId: string;
  /** Gapless position inside the stream, from 1. */
  readonly version: number;
  readonly eventId: string;
  readonly type: string;
  readonly data: Record<string, unknown>;
  readonly metadata: Record<string, unknown>;
  /** Epoch milliseconds of the appending transaction's start. */
  readonly createdAt: number;
};

/** Row shape of `SELECT ... FROM events` with `transaction_id::text`; see `selectEventColumns`. */
export const eventRow = z.object({
  global_position: z.bigint(),
  transaction_id: z.string(),
  stream_id: z.string(),
  version: z.number().int(),
  event_id: z.string(),
  type: z.string(),
  data: z.record(z.string(), z.unknown()),
  metadata: z.record(z.string(), z.unknown()),
  created_at: z.number(),
});

export function toRecordedEvent(row: z.infer<typeof eventRow>): RecordedEvent {
  return {
    globalPosition: row.global_position,
    transactionId: BigInt(row.transaction_id),
    streamId: row.stream_id,
    version: row.version,
    eventId: row.event_id,
    type: row.type,
    data: row.data,
    metadata: row.metadata,
    createdAt: row.created_at,
  };
}

export function compareFeedPositions(a: FeedPosition, b: FeedPosition): number {
  if (a.transactionId !== b.transactionId) return a.transactionId < b.transactionId ? -1 : 1;
  if (a.globalPosition !== b.globalPosition) return a.globalPosition < b.globalPosition ? -1 : 1;
  return 0;
}

/** `"<transaction_id>:<global_position>"`, the text form used in NATS headers and resume cursors. */
export function formatFeedPosition(position: FeedPosition): string {
  return `${position.transactionId}:${position.globalPosition}`;
}

/** @returns null when `text` is not a feed position. */
export function parseFeedPosition(text: string): FeedPosition | null {
  const match = /^(\d{1,20}):(\d{1,19})$/.exec(text);
  if (!match?.[1] || !match[2]) return null;
  return { transactionId: BigInt(match[1]), globalPosition: BigInt(match[2]) };
}
