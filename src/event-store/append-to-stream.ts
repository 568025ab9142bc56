import { sql, UniqueIntegrityConstraintViolationError, type CommonQueryMethods, type DatabaseTransactionConnection, type PrimitiveValueExpression } from 'slonik';
import { newUlid } from '../shared/ulid.js';
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

/**
 * Takes the append locks of the given streams until the transaction ends, in one statement. The locks are
 * taken in ascending order of their keys, so two transactions locking overlapping sets cannot deadlock. They
 * assign no transaction id, so a transaction takes them before loading the state it decides on; every
 * statement after this one sees every append to these streams that committed before.
 * @throws Error when the transaction has already written: the locks must come before the transaction id.
 */
export async function lockStreams(transaction: DatabaseTransactionConnection, streamIds: readonly string[]): Promise<void> {
  const fresh = await transaction.oneFirst(
    sql.type(z.object({ fresh: z.boolean() }))`
      WITH stream_keys AS (
        SELECT DISTINCT hashtextextended(stream_id, 0) AS lock_key
        FROM unnest(${sql.array(streamIds, 'text')}) AS stream_id
        ORDER BY lock_key
      ), locked AS (
        SELECT pg_advisory_xact_lock(lock_key) FROM stream_keys
      )
      SELECT pg_current_xact_id_if_assigned() IS NULL AS fresh FROM (SELECT count(*) FROM locked) AS all_locked`,
  );
  if (!fresh) throw new Error('lockStreams must run before any write of its transaction');
}

export type StreamAppend = {
  readonly streamId: string;
  readonly streamType: string;
  /** The version the caller's decision was based on; 0 for a stream that must not exist yet. */
  readonly expectedVersion: number;
  readonly events: readonly NewEvent[];
  /** The decider's state after these events, cached on the stream row so loads need not fold everything. */
  readonly snapshot?: { readonly state: unknown; readonly schema: number };
};

/**
 * Rows written by the append's statement, and only if every stream is at its expected version: the
 * uniqueness reservations across streams (`conversation_pairs`, `message_client_ids`). A unique violation
 * fails the whole statement: nothing of it is written.
 */
export type Reservation = {
  readonly table: string;
  readonly columns: readonly string[];
  readonly types: readonly string[];
  readonly rows: readonly (readonly PrimitiveValueExpression[])[];
};

const streamVersionRow = z.object({ stream_id: z.string(), version: z.number().int() });

/**
 * True for the errors an append raises when another transaction appended to one of its streams since the
 * state it decided on was loaded: a version mismatch (`ConcurrencyError`), or a concurrent append of the same
 * version found by the events' primary key (the other transaction committed after this statement's snapshot).
 */
export function isVersionConflict(error: unknown): boolean {
  return (
    error instanceof ConcurrencyError ||
    (error instanceof UniqueIntegrityConstraintViolationError && error.constraint === 'events_pkey')
  );
}

/**
 * Appends events to several streams, with their reservations, in one statement. Each stream appears at
 * most once. The statement runs either on its own (autocommit), or inside a transaction that took the
 * streams' locks (`lockStreams`) and has written nothing before.
 *
 * Guarantees, once it commits:
 * - versions inside each stream are gapless and follow its expected version, checked in the same statement
 *   as the write: a mismatch writes nothing (not even the reservations) and is a `ConcurrencyError`; an
 *   append of the same version that commits meanwhile is a unique violation of `events_pkey`
 *   (`isVersionConflict` tells both);
 * - every row carries the appending transaction's id, and the feed order `(transaction_id, global_position)`
 *   of one stream equals its `version` order. On its own, the statement takes its snapshot before it writes,
 *   so before its transaction id exists: an append it sees committed had its id earlier, and one it does not
 *   see makes it fail on `events_pkey`. In a transaction, the locks come before the id, to the same end;
 * - listeners of `EVENTS_APPENDED_CHANNEL` are notified, once for the whole statement.
 * @returns the recorded events of each append, in the order of `appends`.
 * @throws ConcurrencyError when a stream is not at its expected version.
 */
export async function appendToStreams(
  connection: CommonQueryMethods,
  appends: readonly StreamAppend[],
  options: { readonly newEventId?: () => string; readonly reservations?: readonly Reservation[] } = {},
): Promise<RecordedEvent[][]> {
  if (appends.length === 0 || appends.some((append) => append.events.length === 0)) {
    throw new Error('appendToStreams needs at least one event for every stream');
  }
  if (new Set(appends.map((append) => append.streamId)).size !== appends.length) {
    throw new Error('appendToStreams takes each stream once');
  }
  const newEventId = options.newEventId ?? newUlid;
  // Rows in the order they are inserted: stream by stream, versions ascending, so each stream's sequence
  // numbers ascend with its versions.
  const eventRows = appends.flatMap((append) =>
    append.events.map((event, index) => [
      append.streamId,
      append.expectedVersion + index + 1,
      newEventId(),
      event.type,
      JSON.stringify(event.data),
      JSON.stringify(event.metadata ?? {}),
    ]),
  );
  const streamRows = appends.map((append) => [
    append.streamId,
    append.streamType,
    append.expectedVersion,
    append.expectedVersion + append.events.length,
    append.snapshot ? JSON.stringify(append.snapshot.state) : null,
    append.snapshot?.schema ?? null,
  ]);

  const inserted = await connection.any(
    sql.type(eventRow)`
      WITH new_streams AS (
        SELECT * FROM ${sql.unnest(streamRows, ['text', 'text', 'int4', 'int4', 'text', 'int4'])}
          AS s(stream_id, stream_type, expected_version, version, snapshot, snapshot_schema)
      ), expected AS (
        SELECT count(*) = ${appends.length} AS matches
        FROM new_streams AS s LEFT JOIN event_streams AS current USING (stream_id)
        WHERE coalesce(current.version, 0) = s.expected_version
      ), inserted AS (
        INSERT INTO events (transaction_id, stream_id, version, event_id, type, data, metadata)
        SELECT pg_current_xact_id(), e.stream_id, e.version, e.event_id, e.type, e.data::jsonb, e.metadata::jsonb
        FROM ${sql.unnest(eventRows, ['text', 'int4', 'text', 'text', 'text', 'text'])}
          WITH ORDINALITY AS e(stream_id, version, event_id, type, data, metadata, position)
        WHERE (SELECT matches FROM expected)
        ORDER BY e.position
        RETURNING global_position, transaction_id, stream_id, version, event_id, type, data, metadata, created_at
      ), streams AS (
        INSERT INTO event_streams (stream_id, stream_type, version, snapshot, snapshot_schema, last_transaction_id, last_global_position)
        SELECT s.stream_id, s.stream_type, s.version, s.snapshot::jsonb, s.snapshot_schema, pg_current_xact_id(),
               (SELECT max(i.global_position) FROM inserted AS i WHERE i.stream_id = s.stream_id)
        FROM new_streams AS s
        WHERE (SELECT matches FROM expected)
        ON CONFLICT (stream_id) DO UPDATE
          SET version = EXCLUDED.version, snapshot = EXCLUDED.snapshot,
              snapshot_schema = EXCLUDED.snapshot_schema, updated_at = now(),
              last_transaction_id = EXCLUDED.last_transaction_id, last_global_position = EXCLUDED.last_global_position
      )${reservationWrites(options.reservations ?? [])}
      SELECT i.global_position, i.transaction_id::text AS transaction_id, i.stream_id, i.version, i.event_id,
             i.type, i.data, i.metadata, i.created_at
      FROM inserted AS i, (SELECT pg_notify(${EVENTS_APPENDED_CHANNEL}, '')) AS notified
      ORDER BY i.global_position`,
  );
  if (inserted.length === 0) throw await concurrencyErrorFor(connection, appends);

  const byStream = new Map<string, RecordedEvent[]>(appends.map((append) => [append.streamId, []]));
  for (const row of inserted) byStream.get(row.stream_id)?.push(toRecordedEvent(row));
  return appends.map((append) => byStream.get(append.streamId) ?? []);
}

/** The reservations as data-modifying CTEs of the append statement, written only when the versions match. */
function reservationWrites(reservations: readonly Reservation[]) {
  if (reservations.length === 0) return sql.fragment``;
  return sql.join(
    reservations.map(
      (reservation, index) => sql.fragment`, ${sql.identifier([`reserved_${index}`])} AS (
        INSERT INTO ${sql.identifier([reservation.table])} (${sql.join(reservation.columns.map((column) => sql.identifier([column])), sql.fragment`, `)})
        SELECT * FROM ${sql.unnest(reservation.rows, [...reservation.types])} AS r
        WHERE (SELECT matches FROM expected)
      )`,
    ),
    sql.fragment``,
  );
}

/** Names a stream whose version differs from the expected one (the write statement only knew that one did). */
async function concurrencyErrorFor(connection: CommonQueryMethods, appends: readonly StreamAppend[]): Promise<ConcurrencyError> {
  const rows = await connection.any(sql.type(streamVersionRow)`
    SELECT stream_id, version FROM event_streams
    WHERE stream_id = ANY(${sql.array(appends.map((append) => append.streamId), 'text')})`);
  const actual = new Map(rows.map((row) => [row.stream_id, row.version]));
  const mismatch = appends.find((append) => (actual.get(append.streamId) ?? 0) !== append.expectedVersion) ?? appends[0]!;
  return new ConcurrencyError(mismatch.streamId, mismatch.expectedVersion, actual.get(mismatch.streamId) ?? 0);
}
