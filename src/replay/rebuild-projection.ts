import { sql, type DatabasePool, type DatabasePoolConnection, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import { loadCheckpoint, storeCheckpoint } from '../event-store/feed-checkpoint.js';
import { readFeed } from '../event-store/read-feed.js';
import { readStream } from '../event-store/read-stream.js';
import type { FeedPosition, RecordedEvent } from '../event-store/recorded-event.js';
import {
  applyConversationEvents,
  type ProjectableEvent,
  type ReadTables,
} from '../projections/conversation/apply-conversation-events.js';
import {
  createTablesLike,
  dropTables,
  generationTables,
  lockGenerations,
  markBuilding,
  readGenerations,
  switchGeneration,
} from '../projections/read-model-generations.js';
import { compareTables, type TablesComparison } from './compare-tables.js';
import type { Progress } from './progress.js';

export type RebuildOptions = {
  /** A name in `read_model_generations` (`conversations`). */
  readonly projection: string;
  /** Events read and applied per transaction. */
  readonly batchSize: number;
  /** Compare the rebuilt tables with the live ones before switching. */
  readonly verify: boolean;
  /** Switch reads to the rebuilt tables at the end (when verify, only if they are equal, unless `force`). */
  readonly switchReads: boolean;
  /** Switch even when verify finds differences. */
  readonly force: boolean;
  /** Drop a half-built generation and start a new one instead of resuming it. */
  readonly restart: boolean;
};

export type RebuildDeps = {
  readonly pool: DatabasePool;
  readonly progress: (label: string) => Progress;
};

export type RebuildResult = {
  readonly generation: number;
  /** True when an interrupted build of this generation was carried on. */
  readonly resumed: boolean;
  /** Events applied by this run (a resumed run counts only its own). */
  readonly events: number;
  readonly seconds: number;
  readonly comparison: TablesComparison | null;
  /** The generation reads used before, now dropped; null when reads were not switched. */
  readonly replaced: number | null;
};

/** Another replay of the same projection holds its lock. */
export class ReplayBusyError extends Error {
  override readonly name = 'ReplayBusyError';
}

const lockedRow = z.object({ locked: z.boolean() });

/**
 * Rebuilds a projection from the Postgres log into a fresh generation of its tables, while the live ones
 * keep serving, then switches reads to it.
 *
 * Guarantees:
 * - Only the new generation's tables, its checkpoint and the generation row are written: no frame, no
 *   notification, no NATS message, no change to the live tables except what `verify` applies for the live
 *   projector (below).
 * - Each batch and the build's checkpoint commit together, so a run killed at any point and started again
 *   resumes the same generation from the last committed batch.
 * - The switch runs in one transaction that holds the generation row FOR UPDATE: the live projector's writes
 *   wait, the build catches up with the log up to the commit-safe horizon (every event the relay can have
 *   published), `verify` compares, and the views move to the new tables. Readers see all of the old
 *   generation or all of the new one. The projector then carries on into the new tables: its per-conversation
 *   version guard skips what the rebuild already holds and fills anything newer from the log.
 * - One replay per projection at a time (a session advisory lock).
 */
export async function rebuildProjection(deps: RebuildDeps, options: RebuildOptions): Promise<RebuildResult> {
  return deps.pool.connect(async (connection) => {
    const key = `replay:${options.projection}`;
    const { locked } = await connection.one(sql.type(lockedRow)`SELECT pg_try_advisory_lock(hashtext(${key})) AS locked`);
    if (!locked) throw new ReplayBusyError(`another replay of ${options.projection} is running`);
    try {
      return await rebuild(connection, deps, options);
    } finally {
      await connection.query(sql.unsafe`SELECT pg_advisory_unlock(hashtext(${key}))`);
    }
  });
}

async function rebuild(
  connection: DatabasePoolConnection,
  deps: RebuildDeps,
  options: RebuildOptions,
): Promise<RebuildResult> {
  const startedAt = performance.now();
  const { generation, resumed } = await prepareGeneration(connection, options);
  const tables = generationTables(generation);
  const checkpoint = `replay:${options.projection}:g${generation}`;
  let position = await loadCheckpoint(connection, checkpoint);

  const progress = deps.progress(`replay ${options.projection} (generation ${generation})`);
  progress.start(await countEventsAfter(connection, position));
  let events = 0;
  // Build outside any long transaction, so the live projector and readers are not held up. The next batch is
  // read on another pooled connection while this one is applied.
  let reading: Promise<RecordedEvent[]> | null = readFeed(deps.pool, { after: position, limit: options.batchSize });
  while (reading) {
    const batch: RecordedEvent[] = await reading;
    const last = batch.at(-1);
    reading =
      last && batch.length === options.batchSize ? readFeed(deps.pool, { after: last, limit: options.batchSize }) : null;
    if (batch.length === 0) break;
    position = await connection.transaction((transaction) => applyBatch(transaction, tables, checkpoint, position, batch));
    events += batch.length;
    progress.advance(batch.length);
  }
  // Fresh statistics, or the planner treats the bulk-loaded tables as empty and pages without their indexes.
  await analyze(connection, tables);

  let comparison: TablesComparison | null = null;
  let replaced: number | null = null;
  if (options.verify || options.switchReads) {
    ({ comparison, replaced } = await connection.transaction(async (transaction) => {
      const { active } = await lockGenerations(transaction, options.projection, 'update');
      // The last catch-up: from here to the commit no projector write can slip past the rebuild.
      for (;;) {
        const batch = await readFeed(transaction, { after: position, limit: options.batchSize });
        if (batch.length === 0) break;
        position = await applyBatch(transaction, tables, checkpoint, position, batch);
        events += batch.length;
        progress.advance(batch.length);
      }
      const live = generationTables(active);
      let compared: TablesComparison | null = null;
      if (options.verify) {
        await catchUpLiveTables(transaction, live, tables);
        compared = await compareTables(transaction, live, tables, { sampleSize: 20 });
      }
      const equal = compared === null || (compared.counts.discussion === 0 && compared.counts.messages === 0);
      if (!options.switchReads || (!equal && !options.force)) return { comparison: compared, replaced: null };
      await switchGeneration(transaction, options.projection, generation);
      return { comparison: compared, replaced: active };
    }));
  }
  progress.stop();
  if (replaced !== null) await dropTables(connection, generationTables(replaced));
  return { generation, resumed, events, seconds: (performance.now() - startedAt) / 1_000, comparison, replaced };
}

/** The generation to build: the one an interrupted run left, or a new, empty one shaped like the active one. */
async function prepareGeneration(
  connection: DatabasePoolConnection,
  options: RebuildOptions,
): Promise<{ generation: number; resumed: boolean }> {
  const { active, building } = await readGenerations(connection, options.projection);
  if (building !== null && !options.restart) return { generation: building, resumed: true };
  const generation = Math.max(active, building ?? 0) + 1;
  await connection.transaction(async (transaction) => {
    if (building !== null) await dropTables(transaction, generationTables(building));
    // Leftovers of an attempt that died between creating its tables and recording them.
    await dropTables(transaction, generationTables(generation));
    await createTablesLike(transaction, generationTables(active), generationTables(generation));
    await transaction.query(sql.unsafe`
      DELETE FROM feed_checkpoints WHERE consumer LIKE ${`replay:${options.projection}:g%`}`);
    await markBuilding(transaction, options.projection, generation);
  });
  return { generation, resumed: false };
}

async function applyBatch(
  transaction: DatabaseTransactionConnection,
  tables: ReadTables,
  checkpoint: string,
  position: FeedPosition,
  batch: readonly RecordedEvent[],
): Promise<FeedPosition> {
  const last = batch.at(-1);
  if (!last) return position;
  // The feed is in commit order, so per conversation the versions follow on: a hole here is a bug.
  await applyConversationEvents(transaction, tables, batch);
  await storeCheckpoint(transaction, checkpoint, position, last);
  return { transactionId: last.transactionId, globalPosition: last.globalPosition };
}

async function analyze(connection: DatabasePoolConnection, tables: ReadTables): Promise<void> {
  for (const table of [tables.discussion, tables.messages]) {
    await connection.query(sql.unsafe`ANALYZE ${sql.identifier([table])}`);
  }
}

const countRow = z.object({ count: z.coerce.number().int() });

async function countEventsAfter(connection: DatabasePoolConnection, after: FeedPosition): Promise<number> {
  return connection.oneFirst(sql.type(countRow)`
    SELECT count(*) AS count FROM events AS e
    WHERE (e.transaction_id, e.global_position)
          > (${after.transactionId.toString()}::xid8, ${after.globalPosition.toString()}::bigint)`);
}

const behindRow = z.object({ id: z.string(), live_version: z.number().int(), version: z.number().int() });

/**
 * Brings the live tables up to the rebuilt ones' versions, from the log, as the live projector would once it
 * has caught up, so that `verify` compares the same point of each conversation rather than projector lag.
 */
async function catchUpLiveTables(
  transaction: DatabaseTransactionConnection,
  live: ReadTables,
  rebuilt: ReadTables,
): Promise<void> {
  const behind = await transaction.any(sql.type(behindRow)`
    SELECT r.id, coalesce(l.version, 0) AS live_version, r.version
    FROM ${sql.identifier([rebuilt.discussion])} AS r
    LEFT JOIN ${sql.identifier([live.discussion])} AS l ON l.id = r.id
    WHERE coalesce(l.version, 0) < r.version
    ORDER BY r.id`);
  const chunk = 200;
  for (let start = 0; start < behind.length; start += chunk) {
    const events: ProjectableEvent[] = [];
    for (const { id, live_version: afterVersion, version: toVersion } of behind.slice(start, start + chunk)) {
      events.push(...(await readStream(transaction, id, { afterVersion, toVersion })));
    }
    await applyConversationEvents(transaction, live, events);
  }
}
