import { sql, type DatabasePool } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readFeed } from '../../../src/event-store/read-feed.js';
import { compareFeedPositions, FEED_START, type FeedPosition } from '../../../src/event-store/recorded-event.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { sleep } from '../../../src/shared/sleep.js';
import {
  appendNext,
  appendToStream,
  drainFeed,
  holdTransaction,
  oneToN,
  readFeedEventually,
  versionsByStream,
} from '../../support/event-log.js';
import { createTestDatabase } from '../../support/infra.js';

let databaseUrl: string;
let pool: DatabasePool;

beforeAll(async () => {
  databaseUrl = await createTestDatabase();
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 12 });
});
afterAll(async () => {
  await pool.end();
});

/** A fresh stream id per test, so tests share the database without seeing each other's streams. */
let streamCounter = 0;
const newStream = (name: string) => `${name}-${++streamCounter}-${Date.now()}`;

/** The feed position after everything earlier tests left behind. */
async function feedEnd(): Promise<FeedPosition> {
  return (await drainFeed(pool)).at(-1) ?? FEED_START;
}

const one = (type: string) => [{ type, data: {} }];

describe('the global feed', () => {
  it('holds back a faster commit until a slower transaction that took its id first commits, then yields both in order', async () => {
    const start = await feedEnd();
    const [slowStream, fastStream] = [newStream('slow'), newStream('fast')];

    // The slow writer takes its transaction id (its reservation write) and stalls before inserting its event.
    let resume!: () => void;
    const resumed = new Promise<void>((resolve) => (resume = resolve));
    let idTaken!: () => void;
    const hasId = new Promise<void>((resolve) => (idTaken = resolve));
    const slow = holdTransaction(pool, async (transaction) => {
      await appendToStream(transaction, {
        streamId: slowStream,
        streamType: 'test',
        expectedVersion: 0,
        events: one('Slow'),
        reserve: async (tx) => {
          await tx.query(sql.unsafe`SELECT pg_current_xact_id()`);
          idTaken();
          await resumed;
        },
      });
    });
    await hasId;

    // The fast writer gets a later transaction id, a lower global position, and commits first.
    const [fast] = await appendNext(pool, fastStream, {});
    expect(await readFeed(pool, { after: start, limit: 100 })).toEqual([]);

    resume();
    const held = await slow;
    expect(await readFeed(pool, { after: start, limit: 100 })).toEqual([]);
    await held.commit();

    const feed = await readFeedEventually(pool, start, 2);
    expect(feed.map((event) => event.streamId)).toEqual([slowStream, fastStream]);
    const [slowEvent, fastEvent] = feed;
    expect(slowEvent!.transactionId).toBeLessThan(fastEvent!.transactionId);
    // The case a global_position checkpoint gets wrong: the later commit drew the lower position.
    expect(fastEvent!.globalPosition).toBe(fast!.globalPosition);
    expect(slowEvent!.globalPosition).toBeGreaterThan(fastEvent!.globalPosition);
    expect(await readFeed(pool, { after: fastEvent!, limit: 100 })).toEqual([]);
  });

  it('passes over the hole a rolled-back append leaves', async () => {
    const start = await feedEnd();
    const [rolledBack, committed] = [newStream('rolled-back'), newStream('committed')];

    let doomedPosition = 0n;
    const doomed = await holdTransaction(pool, async (transaction) => {
      const [event] = await appendToStream(transaction, {
        streamId: rolledBack,
        streamType: 'test',
        expectedVersion: 0,
        events: one('Doomed'),
      });
      doomedPosition = event!.globalPosition;
    });
    const [kept] = await appendNext(pool, committed, {});
    await doomed.rollback();
    const [later] = await appendNext(pool, rolledBack, {});

    const feed = await readFeedEventually(pool, start, 2);
    expect(feed.map((event) => [event.streamId, event.version, event.type])).toEqual([
      [committed, 1, 'TestEvent'],
      [rolledBack, 1, 'TestEvent'],
    ]);
    // The rolled-back event drew a position nobody holds now: a hole the feed passes over.
    expect(kept!.globalPosition).toBeGreaterThan(doomedPosition);
    expect(feed.some((event) => event.globalPosition === doomedPosition)).toBe(false);
    expect(later!.globalPosition).toBeGreaterThan(kept!.globalPosition);
  });

  it('pauses behind an idle open write transaction and loses nothing once it commits', async () => {
    const start = await feedEnd();
    const idleStream = newStream('idle');
    const idle = await holdTransaction(pool, async (transaction) => {
      await appendToStream(transaction, { streamId: idleStream, streamType: 'test', expectedVersion: 0, events: one('Idle') });
    });

    const others = [newStream('a'), newStream('b'), newStream('c')];
    for (const stream of others) await appendNext(pool, stream, {}, 2);
    for (let poll = 0; poll < 5; poll++) {
      expect(await readFeed(pool, { after: start, limit: 100 })).toEqual([]);
      await sleep(100);
    }

    await idle.commit();
    const feed = await readFeedEventually(pool, start, 7);
    expect(feed).toHaveLength(7);
    expect(feed[0]!.streamId).toBe(idleStream);
    expect(new Set(feed.map((event) => event.eventId)).size).toBe(7);
  });

  it('resumes after the idle-transaction timeout ends a stalled writer', async () => {
    const strictPool = await createDatabasePool({
      url: databaseUrl,
      maximumPoolSize: 2,
      idleInTransactionSessionTimeoutMs: 300,
    });
    try {
      const start = await feedEnd();
      const stalled = await holdTransaction(strictPool, async (transaction) => {
        await appendToStream(transaction, { streamId: newStream('stalled'), streamType: 'test', expectedVersion: 0, events: one('Stalled') });
      });
      const survivor = newStream('survivor');
      await appendNext(pool, survivor, {});
      expect(await readFeed(pool, { after: start, limit: 100 })).toEqual([]);

      await sleep(1_000);
      const feed = await readFeedEventually(pool, start, 1);
      expect(feed.map((event) => event.streamId)).toEqual([survivor]);
      await expect(stalled.commit()).rejects.toThrow();
    } finally {
      await strictPool.end();
    }
  });

  it.each(['locked transaction', 'one statement'] as const)(
    'yields every stream in version order, without gap or duplicate, under 8 concurrent writers on 10 streams (appends: %s)',
    async (mode) => {
      const start = await feedEnd();
      const streams = Array.from({ length: 10 }, (_, index) => newStream(`shared-${index}`));
      const appendsPerWriter = 60;
      let expected = Number.POSITIVE_INFINITY;
      const seen: Awaited<ReturnType<typeof readFeed>> = [];

      // A consumer tails the feed while the writers run, checkpointing as it goes, until it has seen as many
      // events as were appended (other test files share the cluster and may hold the horizon back a moment).
      const reader = (async () => {
        let checkpoint = start;
        const deadline = Date.now() + 30_000;
        while (seen.length < expected && Date.now() < deadline) {
          const batch = await readFeed(pool, { after: checkpoint, limit: 50 });
          for (const event of batch) {
            expect(compareFeedPositions(event, checkpoint)).toBe(1);
            checkpoint = event;
          }
          seen.push(...batch);
          if (batch.length === 0) await sleep(5);
        }
      })();

      const appended = await Promise.all(
        Array.from({ length: 8 }, async (_, writer) => {
          let count = 0;
          for (let i = 0; i < appendsPerWriter; i++) {
            const stream = streams[(writer * 7 + i * 3) % streams.length]!;
            count += (await appendNext(pool, stream, { writer, i }, 1 + (i % 3), mode)).length;
          }
          return count;
        }),
      );
      const total = appended.reduce((sum, count) => sum + count, 0);
      expected = total;
      await reader;

      expect(seen).toHaveLength(total);
      expect(new Set(seen.map((event) => event.eventId)).size).toBe(total);
      const byStream = versionsByStream(seen);
      expect([...byStream.keys()].sort()).toEqual([...streams].sort());
      for (const versions of byStream.values()) expect(versions).toEqual(oneToN(versions.length));
    },
  );
});
