import { sql, type CommonQueryMethods, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { appendToStream, ConcurrencyError, lockStream, type Reserve } from '../event-store/append-to-stream.js';
import { readStream } from '../event-store/read-stream.js';
import type { RecordedEvent } from '../event-store/recorded-event.js';
import type { Decider } from './decider.js';

const snapshotRow = z.object({
  version: z.number().int(),
  snapshot: z.unknown(),
  snapshot_schema: z.number().int().nullable(),
});

/**
 * A stream's current state and version: the cached snapshot when it is of the decider's schema, then every
 * event after it. Reads committed data only; the version is what an append must expect.
 */
export async function loadStream<C, E extends { type: string; data: object }, S>(
  connection: CommonQueryMethods,
  decider: Decider<C, E, S>,
  streamId: string,
): Promise<{ state: S; version: number }> {
  const row = await connection.maybeOne(sql.type(snapshotRow)`
    SELECT version, snapshot, snapshot_schema FROM event_streams WHERE stream_id = ${streamId}`);
  let state = decider.initialState();
  let version = 0;
  const snapshot = row?.snapshot_schema === decider.snapshotSchema ? decider.parseSnapshot(row.snapshot) : null;
  if (row && snapshot) {
    state = snapshot;
    version = row.version;
  }
  for (const event of await readStream(connection, streamId, { afterVersion: version })) {
    state = decider.evolve(state, decider.parseEvent(event));
    version = event.version;
  }
  return { state, version };
}

export type CommandResult<E, S> = {
  /** State after the command (unchanged when it decided nothing). */
  readonly state: S;
  /** Stream version after the command. */
  readonly version: number;
  /** The events this command appended, as stored; empty when it decided nothing. */
  readonly recorded: RecordedEvent[];
  readonly events: E[];
};

/**
 * Runs one command: load, decide, append with the loaded version expected, in one transaction. The first
 * attempt loads without the stream lock (no wait in the common case); if another command appended in
 * between (a version conflict), the retry takes the stream lock before loading, so it cannot conflict again.
 * @throws DomainError from the decider.
 */
export async function handleCommand<C, E extends { type: string; data: object }, S>(
  pool: DatabasePool,
  decider: Decider<C, E, S>,
  streamId: string,
  command: C,
  options: { readonly reserve?: Reserve } = {},
): Promise<CommandResult<E, S>> {
  const attempt = (locked: boolean) =>
    pool.transaction(async (transaction): Promise<CommandResult<E, S>> => {
      if (locked) await lockStream(transaction, streamId);
      const { state, version } = await loadStream(transaction, decider, streamId);
      const events = decider.decide(command, state);
      if (events.length === 0) return { state, version, recorded: [], events };
      const next = events.reduce(decider.evolve, state);
      const recorded = await appendToStream(transaction, {
        streamId,
        streamType: decider.streamType,
        expectedVersion: version,
        events,
        snapshot: { state: next, schema: decider.snapshotSchema },
        ...(options.reserve ? { reserve: options.reserve } : {}),
      });
      return { state: next, version: version + events.length, recorded, events };
    });
  try {
    return await attempt(false);
  } catch (error) {
    if (!(error instanceof ConcurrencyError)) throw error;
    return attempt(true);
  }
}
