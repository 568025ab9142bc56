import { sql, type DatabaseTransactionConnection } from 'slonik';
import { ulid } from 'ulid';
import { z } from 'zod';
import { eventRow, toRecordedEvent, type NewEvent, type RecordedEvent } from './recorded-event.js';

/** The NOTIFY channel an append signals on commit; the relay listens to it. */
export const EVENTS_APPENDED_CHANNEL = 'events_appended';

/** `expectedVersion` did not match the stream's version: someone appended in between. Retry the command. */
export class ConcurrencyError extends Error {
  override readonly name = 'ConcurrencyError';
  constructor(
    readonly streamId: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(`stream ${streamId}: expected version ${expected}, found ${actual}`);
  }
}

/** Extra writes of an append's transaction; `firstVersion` is the version the first new event gets. */
export type Reserve = (
  transaction: DatabaseTransactionConnection,
  append: { readonly firstVersion: number },
) => Promise<void>;

/**
 * Takes the stream's append lock until the transaction ends. It assigns no transaction id, so the caller's
 * transaction may take it before loading the state it decides on (and appendToStream takes it again, which
 * is harmless). Reading after it returns sees every append that committed before.
 * @throws Error when the transaction has already written: the lock must come before the transaction id.
 */
export async function lockStream(transaction: DatabaseTransactionConnection, streamId: string): Promise<void> {
  const fresh = await transaction.oneFirst(
    sql.type(z.object({ fresh: z.boolean() }))`
      SELECT pg_current_xact_id_if_assigned() IS NULL AS fresh
      FROM (SELECT pg_advisory_xact_lock(hashtextextended(${streamId}, 0))) AS stream_lock`,
  );
  if (!fresh) throw new Error('lockStream must run before any write of its transaction');
}

export type AppendOptions = {
  readonly streamId: string;
  readonly streamType: string;
  /** The version the caller's decision was based on; 0 for a stream that must not exist yet. */
  readonly expectedVersion: number;
  readonly events: readonly NewEvent[];
  /** The decider's state after these events, cached on the stream row so loads need not fold everything. */
  readonly snapshot?: { readonly state: unknown; readonly schema: number };
  /**
   * Writes that must commit with the events or not at all (uniqueness reservations across streams). Runs
   * after the stream lock and the version check. A unique violation thrown here rolls everything back.
   */
  readonly reserve?: Reserve;
  readonly newEventId?: () => string;
};

const streamRow = z.object({ version: z.number().int() });

/**
 * Appends events to one stream, inside the caller's transaction, which must not have written anything yet.
 *
 * Guarantees, once the transaction commits:
 * - versions inside the stream are gapless and follow the expected version;
 * - every row carries the appending transaction's id, and since the per-stream advisory lock is taken
 *   before that id exists, the feed order `(transaction_id, global_position)` of one stream equals its
 *   `version` order;
 * - listeners of `EVENTS_APPENDED_CHANNEL` are notified.
 * @throws ConcurrencyError when the stream is not at `expectedVersion`.
 */
export async function appendToStream(
  transaction: DatabaseTransactionConnection,
  options: AppendOptions,
): Promise<RecordedEvent[]> {
  const { streamId, expectedVersion, events } = options;
  if (events.length === 0) throw new Error('appendToStream needs at least one event');

  await lockStream(transaction, streamId);

  // A separate statement: its snapshot is taken after the lock was granted, so it sees the last append.
  const actual =
    (await transaction.maybeOneFirst(
      sql.type(streamRow)`SELECT version FROM event_streams WHERE stream_id = ${streamId}`,
    )) ?? 0;
  if (actual !== expectedVersion) throw new ConcurrencyError(streamId, expectedVersion, actual);

  if (options.reserve) await options.reserve(transaction, { firstVersion: expectedVersion + 1 });

  const newEventId = options.newEventId ?? ulid;
  const rows = events.map((event, index) => [
    expectedVersion + index + 1,
    newEventId(),
    event.type,
    JSON.stringify(event.data),
    JSON.stringify(event.metadata ?? {}),
  ]);
  const lastVersion = expectedVersion + events.length;
  const snapshot = options.snapshot ? sql.jsonb(options.snapshot.state as never) : null;
  const snapshotSchema = options.snapshot?.schema ?? null;

  const inserted = await transaction.any(
    sql.type(eventRow)`
      WITH inserted AS (
        INSERT INTO events (transaction_id, stream_id, version, event_id, type, data, metadata)
        SELECT pg_current_xact_id(), ${streamId}, e.version, e.event_id, e.type, e.data::jsonb, e.metadata::jsonb
        FROM ${sql.unnest(rows, ['int4', 'text', 'text', 'text', 'text'])}
          AS e(version, event_id, type, data, metadata)
        ORDER BY e.version
        RETURNING global_position, transaction_id, stream_id, version, event_id, type, data, metadata, created_at
      ), stream AS (
        INSERT INTO event_streams (stream_id, stream_type, version, snapshot, snapshot_schema)
        VALUES (${streamId}, ${options.streamType}, ${lastVersion}, ${snapshot}, ${snapshotSchema})
        ON CONFLICT (stream_id) DO UPDATE
          SET version = EXCLUDED.version, snapshot = EXCLUDED.snapshot,
              snapshot_schema = EXCLUDED.snapshot_schema, updated_at = now()
      )
      SELECT i.global_position, i.transaction_id::text AS transaction_id, i.stream_id, i.version, i.event_id,
             i.type, i.data, i.metadata, i.created_at
      FROM inserted AS i, (SELECT pg_notify(${EVENTS_APPENDED_CHANNEL}, '')) AS notified
      ORDER BY i.version`,
  );
  return inserted.map(toRecordedEvent);
}
