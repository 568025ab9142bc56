import { sql, type DatabasePool, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import { appendToStreams, isVersionConflict, lockStreams, type StreamAppend } from '../../src/event-store/append-to-stream.js';
import { readFeed } from '../../src/event-store/read-feed.js';
import { selectEventColumns } from '../../src/event-store/read-stream.js';
import { sleep } from '../../src/shared/sleep.js';
import {
  eventRow,
  FEED_START,
  toRecordedEvent,
  type FeedPosition,
  type RecordedEvent,
} from '../../src/event-store/recorded-event.js';

class Rollback extends Error {}

/**
 * Appends events to one stream inside the caller's transaction, the way DESIGN.md section 3 spells it: the
 * stream's lock, then `reserve` (any writes, which may take the transaction id first), then the append
 * statement. Tests use it to stage transactions that hold an id, stall or roll back around an append.
 */
export async function appendToStream(
  transaction: DatabaseTransactionConnection,
  options: StreamAppend & { readonly reserve?: (transaction: DatabaseTransactionConnection) => Promise<void> },
): Promise<RecordedEvent[]> {
  const { reserve, ...append } = options;
  await lockStreams(transaction, [append.streamId]);
  await reserve?.(transaction);
  const [recorded] = await appendToStreams(transaction, [append]);
  return recorded ?? [];
}

export type HeldTransaction = {
  commit(): Promise<void>;
  rollback(): Promise<void>;
};

/**
 * Runs `work` in a transaction on its own pooled connection and keeps that transaction open (idle) until
 * the test commits or rolls it back: the tool to stage interleavings of concurrent writers.
 */
export async function holdTransaction(
  pool: DatabasePool,
  work: (transaction: DatabaseTransactionConnection) => Promise<void>,
): Promise<HeldTransaction> {
  let release!: (commit: boolean) => void;
  const gate = new Promise<boolean>((resolve) => (release = resolve));
  let ready!: () => void;
  const workDone = new Promise<void>((resolve) => (ready = resolve));
  const finished = pool
    .transaction(async (transaction) => {
      await work(transaction);
      ready();
      if (!(await gate)) throw new Rollback();
    }, 0)
    .catch((error: unknown) => {
      if (!(error instanceof Rollback)) throw error;
    });
  await Promise.race([workDone, finished]);
  return {
    commit: async () => {
      release(true);
      await finished;
    },
    rollback: async () => {
      release(false);
      await finished;
    },
  };
}

/** How an append runs: in a transaction that locks the stream first, or as one statement on its own. */
export type AppendMode = 'locked transaction' | 'one statement';

/**
 * Appends `count` events to `streamId` at its current version, retrying on a version conflict (a version
 * mismatch, or the same version appended concurrently).
 */
export async function appendNext(
  pool: DatabasePool,
  streamId: string,
  data: Record<string, unknown>,
  count = 1,
  mode: AppendMode = 'locked transaction',
): Promise<RecordedEvent[]> {
  for (;;) {
    const version =
      (await pool.maybeOneFirst(
        sql.type(z.object({ version: z.number() }))`SELECT version FROM event_streams WHERE stream_id = ${streamId}`,
      )) ?? 0;
    const append = {
      streamId,
      streamType: 'test',
      expectedVersion: version,
      events: Array.from({ length: count }, (_, index) => ({ type: 'TestEvent', data: { ...data, index } })),
    };
    try {
      if (mode === 'one statement') return (await appendToStreams(pool, [append]))[0]!;
      return await pool.transaction((transaction) => appendToStream(transaction, append));
    } catch (error) {
      if (!isVersionConflict(error)) throw error;
    }
  }
}

/**
 * Every committed event, in feed order, without the feed's horizon: what a test that has awaited all its
 * writes compares projections with. (The horizon is cluster-wide: another test file's open transaction
 * would hold `readFeed` back.)
 */
export async function readWholeLog(pool: DatabasePool): Promise<RecordedEvent[]> {
  const rows = await pool.any(sql.type(eventRow)`
    SELECT ${selectEventColumns} FROM events AS e ORDER BY e.transaction_id, e.global_position`);
  return rows.map(toRecordedEvent);
}

/** Reads the feed from `after` to its current end, as a consumer that checkpoints would. */
export async function drainFeed(
  pool: DatabasePool,
  after: FeedPosition = FEED_START,
  limit = 1000,
): Promise<RecordedEvent[]> {
  const out: RecordedEvent[] = [];
  let checkpoint = after;
  for (;;) {
    const batch = await readFeed(pool, { after: checkpoint, limit });
    out.push(...batch);
    const last = batch.at(-1);
    if (!last || batch.length < limit) return out;
    checkpoint = last;
  }
}

/**
 * Reads the feed after `after` until it yields at least `count` events. The horizon is cluster-wide, so
 * write transactions of other test files running at the same moment can hold it back for a short while.
 */
export async function readFeedEventually(
  pool: DatabasePool,
  after: FeedPosition,
  count: number,
  timeoutMs = 20_000,
): Promise<RecordedEvent[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const events = await drainFeed(pool, after);
    if (events.length >= count || Date.now() > deadline) return events;
    await sleep(20);
  }
}

/** Checks, per stream, that versions come out 1, 2, 3, ... with no gap and no duplicate. */
export function versionsByStream(events: readonly RecordedEvent[]): Map<string, number[]> {
  const byStream = new Map<string, number[]>();
  for (const event of events) {
    const versions = byStream.get(event.streamId) ?? [];
    versions.push(event.version);
    byStream.set(event.streamId, versions);
  }
  return byStream;
}

export function oneToN(n: number): number[] {
  return Array.from({ length: n }, (_, index) => index + 1);
}

/** Every stream's version, from `event_streams`. */
export async function readStreamVersions(pool: DatabasePool): Promise<Map<string, number>> {
  const rows = await pool.any(sql.type(z.object({ stream_id: z.string(), version: z.number().int() }))`
    SELECT stream_id, version FROM event_streams`);
  return new Map(rows.map((row) => [row.stream_id, row.version]));
}
