import { sql, type CommonQueryMethods, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import type { FeedPosition } from './recorded-event.js';

/**
 * Erasure, the log's one exception to append-only (docs/event-store.md, "Erasure"): fields of an event's
 * data are set to JSON null in place, in the transaction that appends the event asking for it, and the
 * erasure is recorded in `event_erasures` (migration 007) with no erased data. The relay then deletes the
 * original's copy from the events stream and marks the erasure done there.
 */

/** The NOTIFY channel an erasure signals on commit; the relay listens to it. */
export const EVENTS_ERASED_CHANNEL = 'events_erased';

export type EventErasure = {
  /** The stream and version of the event to erase. */
  readonly streamId: string;
  readonly version: number;
  /** Top-level keys of its `data` set to null; the rest of the event stays. */
  readonly fields: readonly string[];
  /** The event that asks for the erasure, appended in the same transaction. */
  readonly erasedByEventId: string;
};

const erasedRow = z.object({ event_id: z.string() });

/**
 * Erases `fields` of one event and records it, in one statement of the transaction that appends the
 * erasing event: both commit or neither does. Listeners of `EVENTS_ERASED_CHANNEL` are notified on commit.
 * @throws Error when the stream has no such version (a caller's bug: the erasing event names it).
 */
export async function eraseEventFields(transaction: DatabaseTransactionConnection, erasure: EventErasure): Promise<void> {
  const erased = await transaction.maybeOne(sql.type(erasedRow)`
    WITH erased AS (
      UPDATE events
      SET data = data || (SELECT jsonb_object_agg(field, 'null'::jsonb) FROM unnest(${sql.array([...erasure.fields], 'text')}) AS field)
      WHERE stream_id = ${erasure.streamId} AND version = ${erasure.version}
      RETURNING event_id, stream_id, version
    ), recorded AS (
      INSERT INTO event_erasures (event_id, stream_id, version, erased_by_event_id)
      SELECT event_id, stream_id, version, ${erasure.erasedByEventId} FROM erased
      RETURNING event_id
    )
    SELECT r.event_id FROM recorded AS r, (SELECT pg_notify(${EVENTS_ERASED_CHANNEL}, '')) AS notified`);
  if (!erased) throw new Error(`no event to erase at ${erasure.streamId} version ${erasure.version}`);
}

/** An erased event whose copy in the events stream may still hold the erased data. */
export type StreamErasure = {
  readonly eventId: string;
  readonly streamId: string;
  readonly version: number;
  /** The erased event's feed position: where the relay published it. */
  readonly position: FeedPosition;
  /** The version of the erasing event, published after it. */
  readonly erasedByVersion: number;
};

const pendingRow = z.object({
  event_id: z.string(),
  stream_id: z.string(),
  version: z.number().int(),
  transaction_id: z.string(),
  global_position: z.bigint(),
  erased_by_version: z.number().int(),
});

/**
 * Erasures not yet done in the events stream whose erasing event is at or before `upTo` in feed order. A
 * relay whose checkpoint is `upTo` has published the erasing event, hence the erased one before it (one
 * stream's feed order is its version order): that copy is in the stream, or aged out, and cannot come later.
 */
export async function streamErasuresUpTo(connection: CommonQueryMethods, upTo: FeedPosition, limit: number): Promise<StreamErasure[]> {
  const rows = await connection.any(sql.type(pendingRow)`
    SELECT x.event_id, x.stream_id, x.version, o.transaction_id::text AS transaction_id, o.global_position,
           d.version AS erased_by_version
    FROM event_erasures AS x
    JOIN events AS d ON d.event_id = x.erased_by_event_id
    JOIN events AS o ON o.event_id = x.event_id
    WHERE x.jetstream_erased_at IS NULL
      AND (d.transaction_id, d.global_position) <= (${upTo.transactionId.toString()}::xid8, ${upTo.globalPosition.toString()}::bigint)
    ORDER BY x.erased_at, x.event_id
    LIMIT ${limit}`);
  return rows.map((row) => ({
    eventId: row.event_id,
    streamId: row.stream_id,
    version: row.version,
    position: { transactionId: BigInt(row.transaction_id), globalPosition: row.global_position },
    erasedByVersion: row.erased_by_version,
  }));
}

/** Whether some erasure is not done in the events stream yet, whether or not the relay passed its erasing event. */
export async function hasStreamErasuresPending(connection: CommonQueryMethods): Promise<boolean> {
  return connection.oneFirst(sql.type(z.object({ pending: z.boolean() }))`
    SELECT EXISTS (SELECT FROM event_erasures WHERE jetstream_erased_at IS NULL) AS pending`);
}

/** Records that the events stream no longer holds these events' copies. */
export async function markStreamErased(connection: CommonQueryMethods, eventIds: readonly string[]): Promise<void> {
  if (eventIds.length === 0) return;
  await connection.query(sql.unsafe`
    UPDATE event_erasures SET jetstream_erased_at = now()
    WHERE event_id = ANY(${sql.array([...eventIds], 'text')}) AND jetstream_erased_at IS NULL`);
}
