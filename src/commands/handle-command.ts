import { sql, UniqueIntegrityConstraintViolationError, type CommonQueryMethods, type DatabasePool, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import {
  appendToStreams,
  isVersionConflict,
  lockStreams,
  type Reservation,
  type StreamAppend,
} from '../event-store/append-to-stream.js';
import { readStream } from '../event-store/read-stream.js';
import type { FeedPosition, NewEvent, RecordedEvent } from '../event-store/recorded-event.js';
import type { Decider } from './decider.js';
import { DomainError } from './domain-error.js';

const snapshotRow = z.object({
  stream_id: z.string(),
  version: z.number().int(),
  snapshot: z.unknown(),
  snapshot_schema: z.number().int().nullable(),
  last_transaction_id: z.string().nullable(),
  last_global_position: z.bigint().nullable(),
});

export type LoadedStream<S> = {
  readonly state: S;
  readonly version: number;
  /**
   * Where the stream's last event (at `version`) is in the feed; null for a stream with none, or when not known
   * (a stream last appended to before migration 008).
   */
  readonly position: FeedPosition | null;
};

const positionOf = (row: z.infer<typeof snapshotRow>): FeedPosition | null =>
  row.last_transaction_id === null || row.last_global_position === null
    ? null
    : { transactionId: BigInt(row.last_transaction_id), globalPosition: row.last_global_position };

/**
 * The current state and version of several streams, in one statement when their snapshots are of the
 * decider's schema. A snapshot is written with every append, so it is always at the stream's version; a
 * stream without a usable one (an older schema) is folded from its events. Reads committed data only, so
 * what it returns may be stale by the time it is used: an append based on it checks the versions.
 */
export async function loadStreams<C, E extends { type: string; data: object }, S>(
  connection: CommonQueryMethods,
  decider: Decider<C, E, S>,
  streamIds: readonly string[],
): Promise<Map<string, LoadedStream<S>>> {
  const rows = await connection.any(sql.type(snapshotRow)`
    SELECT stream_id, version, snapshot, snapshot_schema, last_transaction_id::text AS last_transaction_id, last_global_position
    FROM event_streams WHERE stream_id = ANY(${sql.array([...new Set(streamIds)], 'text')})`);
  const loaded = new Map<string, LoadedStream<S>>(streamIds.map((id) => [id, { state: decider.initialState(), version: 0, position: null }]));
  for (const row of rows) {
    const snapshot = row.snapshot_schema === decider.snapshotSchema ? decider.parseSnapshot(row.snapshot) : null;
    if (snapshot) loaded.set(row.stream_id, { state: snapshot, version: row.version, position: positionOf(row) });
    else loaded.set(row.stream_id, await foldStream(connection, decider, row.stream_id));
  }
  return loaded;
}

async function foldStream<C, E extends { type: string; data: object }, S>(
  connection: CommonQueryMethods,
  decider: Decider<C, E, S>,
  streamId: string,
): Promise<LoadedStream<S>> {
  let state = decider.initialState();
  let version = 0;
  let position: FeedPosition | null = null;
  for (const event of await readStream(connection, streamId)) {
    state = decider.evolve(state, decider.parseEvent(event));
    version = event.version;
    position = { transactionId: event.transactionId, globalPosition: event.globalPosition };
  }
  return { state, version, position };
}

export type CommandResult<E, S> = {
  /** State of the stream after the command (unchanged when it decided nothing). */
  readonly state: S;
  /** Stream version after the command. */
  readonly version: number;
  /** The events this command appended, as stored; empty when it decided nothing. */
  readonly recorded: RecordedEvent[];
  readonly events: E[];
  /**
   * Where the stream's event just before this command's first one is in the feed (the last one appended
   * before, by anyone, or by an earlier command of the batch); null when unknown or when it appended nothing.
   */
  readonly previous: FeedPosition | null;
};

export type CommandRequest<C> = {
  readonly streamId: string;
  readonly command: C;
  /** Recorded on each event the command appends (the request that caused it: event-metadata.ts). */
  readonly metadata?: Readonly<Record<string, unknown>>;
};

/** A command that decided events, with the version its first event gets: what a reservation needs. */
export type DecidedCommand<C, E> = CommandRequest<C> & { readonly events: readonly E[]; readonly firstVersion: number };

export type HandleCommandsOptions = {
  /**
   * Writes that must commit with the events or not at all but need the events as recorded (an erasure names
   * the event that asks for it), given every event the batch appended. With it, every attempt is a locked one
   * (a few round trips more: for rare commands), and these writes run in its transaction after the append;
   * they are not called when the batch appended nothing.
   */
  readonly withAppend?: (transaction: DatabaseTransactionConnection, recorded: readonly RecordedEvent[]) => Promise<void>;
};

export type AttemptOptions<C, E, S> = HandleCommandsOptions & {
  /**
   * Rows that must be written with the events or not at all (uniqueness reservations across streams), given
   * every command of the batch that decided events. They are written by the append's statement; a unique
   * violation there fails the whole batch and writes nothing. A caller with reservations looks them up before
   * each attempt, so it runs `attemptCommands` under its own `retryOnConflict`.
   */
  readonly reservations?: (decided: readonly DecidedCommand<C, E>[]) => readonly Reservation[];
  /**
   * The streams as `loadStreams` read them moments ago, for an optimistic attempt that would read them first
   * (the caller read them alongside its own reads, in parallel); the append's version check holds either way.
   * A locked attempt ignores them: it reads its streams again under their locks.
   */
  readonly loaded?: ReadonlyMap<string, LoadedStream<S>>;
};

/**
 * Attempts of one command batch before a conflict is given up. On a busy stream other commands' first,
 * unlocked attempts keep winning: five lost in a row were seen on a loaded machine.
 */
const CONFLICT_ATTEMPTS = 20;

/** How an attempt appends: unlocked with the version check alone, or after taking its streams' locks. */
export type AttemptMode = 'optimistic' | 'locked';

/**
 * What another transaction's commit did to an attempt: `version`, it appended to one of its streams (the
 * version check or the events' primary key); `reservation`, it took one of its reservations first (any other
 * unique violation, reservations being the only other unique rows an append writes).
 */
export type Conflict = 'version' | 'reservation';

export function conflictOf(error: unknown): Conflict | null {
  if (isVersionConflict(error)) return 'version';
  if (error instanceof UniqueIntegrityConstraintViolationError) return 'reservation';
  return null;
}

/**
 * The one retry of the command path. Runs `attempt` (given its mode and its number, from 1) until it commits
 * without a conflict: after a version conflict the next attempt is locked (it then cannot conflict with other
 * locked attempts, only with a first, unlocked one that got in between); after a reservation conflict the
 * attempt runs again as it was, and its own lookup of the reservations finds the winner's. Any other error,
 * or a conflict at the last attempt, rejects.
 */
export async function retryOnConflict<T>(first: AttemptMode, attempt: (mode: AttemptMode, attempt: number) => Promise<T>): Promise<T> {
  let mode = first;
  for (let attempts = 1; ; attempts++) {
    try {
      return await attempt(mode, attempts);
    } catch (error) {
      const conflict = conflictOf(error);
      if (conflict === null || attempts >= CONFLICT_ATTEMPTS) throw error;
      if (conflict === 'version') mode = 'locked';
    }
  }
}

/**
 * Runs a batch of commands, on any streams: load every stream (one statement), decide each command in order
 * against its stream's state so far (a later command on the same stream sees the earlier one's events), then
 * append everything and the reservations in one statement, which commits on its own (with `withAppend`, in a
 * locked transaction that also holds those writes). A command the decider refuses (DomainError) is settled
 * as rejected and the others go on; any other error rejects the call, with nothing written.
 *
 * Two round trips when nobody else appended to these streams in between; conflicts are retried by
 * `retryOnConflict`. Each stream's events keep the order of their commands, and the feed order follows it.
 * @returns one settled result per request, in the order of `requests`.
 */
export async function handleCommands<C, E extends { type: string; data: object }, S>(
  pool: DatabasePool,
  decider: Decider<C, E, S>,
  requests: readonly CommandRequest<C>[],
  options: HandleCommandsOptions = {},
): Promise<PromiseSettledResult<CommandResult<E, S>>[]> {
  return retryOnConflict(options.withAppend ? 'locked' : 'optimistic', (mode) => attemptCommands(pool, decider, requests, options, mode));
}

/**
 * One attempt of `handleCommands`, for callers that look something up before each attempt and retry it
 * themselves with `retryOnConflict`. `locked` runs in a transaction that takes the streams' locks first.
 * @throws the conflicts `conflictOf` classifies, with nothing written.
 */
export async function attemptCommands<C, E extends { type: string; data: object }, S>(
  pool: DatabasePool,
  decider: Decider<C, E, S>,
  requests: readonly CommandRequest<C>[],
  options: AttemptOptions<C, E, S>,
  mode: AttemptMode,
): Promise<PromiseSettledResult<CommandResult<E, S>>[]> {
  if (requests.length === 0) return [];
  const streamIds = requests.map((request) => request.streamId);
  if (mode === 'optimistic' && !options.withAppend) {
    const { loaded } = options;
    const streams = loaded && streamIds.every((id) => loaded.has(id)) ? new Map(loaded) : await loadStreams(pool, decider, streamIds);
    return decideAndAppend(pool, decider, requests, streams, options);
  }
  return pool.transaction(async (transaction) => {
    await lockStreams(transaction, [...new Set(streamIds)]);
    const results = await decideAndAppend(transaction, decider, requests, await loadStreams(transaction, decider, streamIds), options);
    const recorded = results.flatMap((result) => (result.status === 'fulfilled' ? result.value.recorded : []));
    if (recorded.length > 0) await options.withAppend?.(transaction, recorded);
    return results;
  });
}

/** Decides each request against `streams` (updated as it goes: later commands see earlier ones' events), then appends. */
async function decideAndAppend<C, E extends { type: string; data: object }, S>(
  connection: CommonQueryMethods,
  decider: Decider<C, E, S>,
  requests: readonly CommandRequest<C>[],
  streams: Map<string, LoadedStream<S>>,
  options: AttemptOptions<C, E, S>,
): Promise<PromiseSettledResult<CommandResult<E, S>>[]> {
  const lastBefore = new Map([...streams].map(([streamId, stream]) => [streamId, stream.position]));
  const decisions = requests.map((request) => {
    const stream = streams.get(request.streamId)!;
    try {
      const events = decider.decide(request.command, stream.state);
      const state = events.reduce(decider.evolve, stream.state);
      const decided = { ...request, events, firstVersion: stream.version + 1, state, version: stream.version + events.length };
      // Where the new events will be is known once they are appended (`appendDecided`).
      streams.set(request.streamId, { state, version: decided.version, position: null });
      return { ok: true as const, decided };
    } catch (error) {
      if (!(error instanceof DomainError)) throw error;
      return { ok: false as const, error };
    }
  });
  const decided = decisions.flatMap((decision) => (decision.ok && decision.decided.events.length > 0 ? [decision.decided] : []));
  const appended =
    decided.length > 0
      ? await appendDecided(connection, decider, decided, { streams, lastBefore }, options.reservations?.(decided) ?? [])
      : new Map<DecidedCommand<C, E>, Appended>();
  return decisions.map((decision): PromiseSettledResult<CommandResult<E, S>> => {
    if (!decision.ok) return { status: 'rejected', reason: decision.error };
    const { state, version, events } = decision.decided;
    const { recorded, previous } = appended.get(decision.decided) ?? { recorded: [], previous: null };
    return { status: 'fulfilled', value: { state, version, events, recorded, previous } };
  });
}

/** A command's events as stored, and where the stream's event before the first of them is. */
type Appended = { readonly recorded: RecordedEvent[]; readonly previous: FeedPosition | null };

/**
 * One append per stream holding all its commands' events; the recorded events are handed back per command,
 * each with the position of the event before its first: the stream's last before the batch (`lastBefore`),
 * then the last of the command before it.
 */
async function appendDecided<C, E extends { type: string; data: object }, S>(
  connection: CommonQueryMethods,
  decider: Decider<C, E, S>,
  decided: readonly DecidedCommand<C, E>[],
  { streams, lastBefore }: { readonly streams: ReadonlyMap<string, LoadedStream<S>>; readonly lastBefore: ReadonlyMap<string, FeedPosition | null> },
  reservations: readonly Reservation[],
): Promise<Map<DecidedCommand<C, E>, Appended>> {
  const byStream = new Map<string, DecidedCommand<C, E>[]>();
  for (const command of decided) byStream.set(command.streamId, [...(byStream.get(command.streamId) ?? []), command]);
  const appends: StreamAppend[] = [...byStream].map(([streamId, commands]) => ({
    streamId,
    streamType: decider.streamType,
    expectedVersion: commands[0]!.firstVersion - 1,
    events: commands.flatMap((command): NewEvent[] =>
      command.events.map((event) => ({ type: event.type, data: event.data, ...(command.metadata && { metadata: command.metadata }) })),
    ),
    snapshot: { state: streams.get(streamId)!.state, schema: decider.snapshotSchema },
  }));
  const recorded = await appendToStreams(connection, appends, { reservations });
  const perCommand = new Map<DecidedCommand<C, E>, Appended>();
  recorded.forEach((events, index) => {
    const streamId = appends[index]!.streamId;
    let previous = lastBefore.get(streamId) ?? null;
    let offset = 0;
    for (const command of byStream.get(streamId)!) {
      const own = events.slice(offset, offset + command.events.length);
      perCommand.set(command, { recorded: own, previous });
      const last = own.at(-1);
      if (last) previous = { transactionId: last.transactionId, globalPosition: last.globalPosition };
      offset += command.events.length;
    }
  });
  return perCommand;
}

/**
 * Runs one command: `handleCommands` with a batch of one.
 * @throws DomainError from the decider.
 */
export async function handleCommand<C, E extends { type: string; data: object }, S>(
  pool: DatabasePool,
  decider: Decider<C, E, S>,
  streamId: string,
  command: C,
  options: HandleCommandsOptions & { readonly metadata?: Readonly<Record<string, unknown>> } = {},
): Promise<CommandResult<E, S>> {
  const { metadata, ...batchOptions } = options;
  const [result] = await handleCommands(pool, decider, [{ streamId, command, ...(metadata && { metadata }) }], batchOptions);
  if (result?.status !== 'fulfilled') throw result?.reason;
  return result.value;
}
