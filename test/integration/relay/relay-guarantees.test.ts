import type { NatsConnection, Subscription } from 'nats';
import { sql, type DatabasePool } from 'slonik';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { loadCheckpoint } from '../../../src/event-store/feed-checkpoint.js';
import { formatFeedPosition, type FeedPosition, type RecordedEvent } from '../../../src/event-store/recorded-event.js';
import { FEED_POSITION_HEADER } from '../../../src/relay/event-message.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { allEventsSubject } from '../../../src/shared/nats.js';
import { appendNext, readWholeLog } from '../../support/event-log.js';
import { createTestDatabase, natsUrl, testPrefix, testRoleEnv, testStreamName } from '../../support/infra.js';
import { connectTestNats, readAllStored, storedCount } from '../../support/jetstream.js';
import { spawnRole, type RoleProcess } from '../../support/processes.js';
import { hostAndPort, startTcpProxy } from '../../support/tcp-proxy.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * The relay's own guarantees, checked without leaning on JetStream's duplicate window: a core NATS
 * subscription on the events subjects sees every publish the relay makes, including those JetStream would
 * drop as repeats, and each relay process's /metrics says how many events it published itself.
 */

let nc: NatsConnection;
const running: RoleProcess[] = [];
const subscriptions: Subscription[] = [];

beforeAll(async () => {
  nc = await connectTestNats(natsUrl());
});
afterEach(async () => {
  for (const subscription of subscriptions.splice(0)) subscription.unsubscribe();
  await Promise.all(running.splice(0).map((relay) => relay.stop()));
});
afterAll(async () => {
  await nc.close();
});

type Setting = { pool: DatabasePool; env: Record<string, string>; prefix: string; stream: string; consumer: string };

async function setting(): Promise<Setting> {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  const stream = testStreamName(prefix);
  const env = {
    ...testRoleEnv({ databaseUrl, prefix }),
    RELAY_BATCH_SIZE: '50',
    RELAY_LEASE_RETRY_MS: '200',
    LOG_LEVEL: 'info',
  };
  const pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 10 });
  return { pool, env, prefix, stream, consumer: `relay:${stream}` };
}

type Relay = RoleProcess & { readonly opsPort: number };

async function startRelay(env: Record<string, string>, name: string): Promise<Relay> {
  const relay = await spawnRole({ name, entry: 'src/relay/main.ts', env });
  running.push(relay);
  const line = await relay.waitForOutput(/ops server on port \d+/, 60_000);
  return Object.assign(relay, { opsPort: Number(/(\d+)$/.exec(line)?.[1]) });
}

/** A series of the relay's /metrics (its role label is on every series). */
async function relayMetric(relay: Relay, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${relay.opsPort}/metrics`)).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`) || candidate.startsWith(`${name} `));
  if (!line) throw new Error(`no ${name} in the relay's metrics`);
  return Number(line.split(' ').at(-1));
}

/** Every publish on the events subjects, as core NATS passes it on: JetStream's deduplication hides none. */
type Publishes = { readonly eventIds: string[]; countOf(eventId: string): number; repeated(): string[] };

function watchPublishes(prefix: string): Publishes {
  const eventIds: string[] = [];
  subscriptions.push(
    nc.subscribe(allEventsSubject(prefix), {
      callback: (error, message) => {
        if (error) throw error;
        eventIds.push(message.headers?.get('Nats-Msg-Id') ?? `no id: ${message.subject}`);
      },
    }),
  );
  return {
    eventIds,
    countOf: (eventId) => eventIds.filter((id) => id === eventId).length,
    repeated: () => [...new Set(eventIds.filter((id, index) => eventIds.indexOf(id) !== index))],
  };
}

let sentinels = 0;
/**
 * The barrier: a sentinel appended after everything else, awaited on the same path. One relay publishes in
 * feed order on one connection, so once the sentinel is seen every publish before it (repeats included) is.
 */
async function publishedUpTo(pool: DatabasePool, publishes: Publishes): Promise<RecordedEvent> {
  const [sentinel] = await appendNext(pool, `sentinel-${++sentinels}`, { sentinel: true });
  await waitUntil('the sentinel to be published', () => Promise.resolve(publishes.eventIds.includes(sentinel!.eventId)), {
    timeoutMs: 60_000,
    intervalMs: 50,
  });
  return sentinel!;
}

/** `count` events over 20 conversations, `chunk` per append, by 4 concurrent writers. */
async function appendMany(pool: DatabasePool, count: number, tag: string, chunk = 10): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < count) {
        const start = next;
        next = Math.min(count, next + chunk);
        await appendNext(pool, `${tag}-${(start / chunk) % 20}`, { start }, next - start);
      }
    }),
  );
}

/** Every event of the log was published exactly once, and nothing else was. */
async function expectEachPublishedOnce(pool: DatabasePool, publishes: Publishes): Promise<void> {
  const log = await readWholeLog(pool);
  expect(publishes.repeated()).toEqual([]);
  expect([...publishes.eventIds].sort()).toEqual(log.map((event) => event.eventId).sort());
}

const position = (event: FeedPosition) => formatFeedPosition(event);

/** The feed position of the stream's last message: how far the relay's publishes got. */
async function lastStoredPosition(stream: string): Promise<string | undefined> {
  const jsm = await nc.jetstreamManager();
  const info = await jsm.streams.info(stream);
  const last = await jsm.streams.getMessage(stream, { seq: info.state.last_seq });
  return last.header.get(FEED_POSITION_HEADER);
}

// Each test starts up to two relay processes and waits on them: generous on a loaded 2-core machine.
describe('the relay, counted publish by publish', { timeout: 120_000 }, () => {
  it('keeps its checkpoint across a restart: the next leader publishes only what came after', async () => {
    const { pool, env, stream, consumer } = await setting();
    try {
      const publishes = watchPublishes(env['NATS_SUBJECT_PREFIX']!);
      const first = await startRelay(env, 'relay-1');
      await appendMany(pool, 300, 'before');
      const lastOfFirst = await publishedUpTo(pool, publishes);
      await first.stop();
      expect(await first.exited).toBe(0);
      expect(position(await loadCheckpoint(pool, consumer))).toBe(position(lastOfFirst));

      const second = await startRelay(env, 'relay-2');
      await second.waitForOutput(/leadership acquired/);
      await appendMany(pool, 30, 'after');
      await publishedUpTo(pool, publishes);
      await expectEachPublishedOnce(pool, publishes);
      // Its own count: the 30 new events and the sentinel, nothing of the first relay's.
      expect(await relayMetric(second, 'chat_relay_events_published_total')).toBe(31);
      expect(await storedCount(nc, stream)).toBe(publishes.eventIds.length);
    } finally {
      await pool.end();
    }
  });

  it('moves a checkpoint that is behind the stream to the stream’s end instead of publishing from it', async () => {
    const { pool, env, stream, consumer } = await setting();
    try {
      const publishes = watchPublishes(env['NATS_SUBJECT_PREFIX']!);
      const first = await startRelay(env, 'relay-1');
      await appendMany(pool, 200, 'before');
      const lastOfFirst = await publishedUpTo(pool, publishes);
      await first.stop();

      // What a crash of Postgres does to a checkpoint committed without waiting for its flush: it goes back.
      const log = await readWholeLog(pool);
      const midway = log[100]!;
      await pool.query(sql.unsafe`
        UPDATE feed_checkpoints SET transaction_id = ${midway.transactionId.toString()}::xid8,
          global_position = ${midway.globalPosition.toString()}
        WHERE consumer = ${consumer}`);

      const second = await startRelay(env, 'relay-2');
      const moved = await second.waitForOutput(/"published":"[^"]+"[^\n]*stream is ahead of the checkpoint/);
      expect(moved).toContain(`"published":"${position(lastOfFirst)}"`);
      const last = await publishedUpTo(pool, publishes);
      await expectEachPublishedOnce(pool, publishes);
      expect(await relayMetric(second, 'chat_relay_events_published_total')).toBe(1);
      await waitUntil('the checkpoint to reach the last event', async () => position(await loadCheckpoint(pool, consumer)) === position(last));
      expect(await lastStoredPosition(stream)).toBe(position(last));
    } finally {
      await pool.end();
    }
  });

  it('stops in order on SIGTERM with a batch in flight: the batch and its checkpoint first, then the lease and the rest; exit 0', async () => {
    const { pool, env, stream, consumer } = await setting();
    // Only the relay's NATS connection goes through the proxy: holding what the server sends holds its publish acks.
    const proxy = await startTcpProxy(hostAndPort(natsUrl()));
    try {
      const publishes = watchPublishes(env['NATS_SUBJECT_PREFIX']!);
      const relay = await startRelay({ ...env, RELAY_BATCH_SIZE: '20', NATS_URL: proxy.url }, 'relay');
      const writing = appendMany(pool, 3_000, 'flow');
      await waitUntil('the relay to be publishing', () => Promise.resolve(publishes.eventIds.length >= 500), { intervalMs: 10 });

      // A batch in flight: JetStream stored part of it and acknowledged that, and the acks are held, so the
      // batch cannot finish before the signal is handled. Released soon after: a publish waits 5 s for its ack.
      proxy.deafen();
      await waitUntil('a publish ack held', () => Promise.resolve(proxy.held().includes('"seq":')), { intervalMs: 5 });
      relay.kill('SIGTERM');
      await relay.waitForOutput(/"msg":"shutting down"/);
      proxy.release();
      expect(await relay.exited).toBe(0);
      await writing;

      // The relay's phase ended only once the batch was checkpointed: the lease, NATS and the pool after it.
      const lines = relay
        .output()
        .split('\n')
        .filter((line) => line.startsWith('{'))
        .map((line) => JSON.parse(line) as { msg?: string; phase?: string; checkpoint?: string });
      const stopped = lines.findIndex((line) => line.msg === 'relay stopped');
      const phaseDone = (phase: string) => lines.findIndex((line) => line.msg === 'shutdown phase done' && line.phase === phase);
      expect(stopped).toBeGreaterThan(-1);
      expect(phaseDone('relay')).toBeGreaterThan(stopped);
      expect(phaseDone('lease')).toBeGreaterThan(phaseDone('relay'));
      expect(phaseDone('database')).toBeGreaterThan(phaseDone('lease'));

      // The stream holds a prefix of the feed, once each and in order, and the checkpoint is its last event.
      const stored = await readAllStored(nc, stream);
      expect(stored.length).toBeGreaterThan(0);
      expect(stored.length).toBeLessThan(3_000);
      const checkpoint = position(await loadCheckpoint(pool, consumer));
      expect(stored.at(-1)?.position).toBe(checkpoint);
      expect(lines[stopped]?.checkpoint).toBe(checkpoint);
      const log = await readWholeLog(pool);
      expect(stored.map((message) => message.event_id)).toEqual(log.slice(0, stored.length).map((event) => event.eventId));
      expect(publishes.repeated()).toEqual([]);
    } finally {
      await proxy.close();
      await pool.end();
    }
  });

  it('lets only the lease holder publish: the standby publishes nothing until the leader is gone', async () => {
    const { pool, env } = await setting();
    try {
      const publishes = watchPublishes(env['NATS_SUBJECT_PREFIX']!);
      const leader = await startRelay(env, 'relay-a');
      await leader.waitForOutput(/leadership acquired/);
      const standby = await startRelay(env, 'relay-b');
      await standby.waitForOutput(/waiting for leadership/);

      await appendMany(pool, 400, 'pair');
      await publishedUpTo(pool, publishes);
      await expectEachPublishedOnce(pool, publishes);
      expect(await relayMetric(leader, 'chat_relay_events_published_total')).toBe(401);
      expect(await relayMetric(leader, 'chat_relay_leader')).toBe(1);
      expect(await relayMetric(standby, 'chat_relay_events_published_total')).toBe(0);
      expect(await relayMetric(standby, 'chat_relay_leader')).toBe(0);

      await leader.stop();
      expect(await leader.exited).toBe(0);
      await standby.waitForOutput(/leadership acquired/);
      await appendMany(pool, 40, 'takeover');
      await publishedUpTo(pool, publishes);
      await expectEachPublishedOnce(pool, publishes);
      expect(await relayMetric(standby, 'chat_relay_events_published_total')).toBe(41);
    } finally {
      await pool.end();
    }
  });

  it('stops at once when its lease connection is lost, and the standby carries on without a repeat', async () => {
    const { pool, env, consumer } = await setting();
    try {
      const publishes = watchPublishes(env['NATS_SUBJECT_PREFIX']!);
      const leader = await startRelay(env, 'relay-a');
      await leader.waitForOutput(/leadership acquired/);
      const standby = await startRelay(env, 'relay-b');
      await standby.waitForOutput(/waiting for leadership/);
      await appendMany(pool, 100, 'before');
      await publishedUpTo(pool, publishes);

      // The leader's lease is the advisory lock its dedicated connection holds: end that connection.
      const holder = z.object({ pid: z.number().int() });
      const pids = await pool.anyFirst(sql.type(holder)`
        SELECT l.pid FROM pg_locks AS l JOIN pg_database AS d ON d.oid = l.database
        WHERE l.locktype = 'advisory' AND l.granted AND d.datname = current_database()`);
      expect(pids).toHaveLength(1);
      await pool.query(sql.unsafe`SELECT pg_terminate_backend(${pids[0]!})`);

      expect(await leader.exited).toBe(1);
      expect(leader.output()).toMatch(/relay lost its lease/);
      await standby.waitForOutput(/leadership acquired/);
      await appendMany(pool, 40, 'after');
      const last = await publishedUpTo(pool, publishes);
      await expectEachPublishedOnce(pool, publishes);
      // The checkpoint is saved after the publish acks, so it may trail the last publish seen on NATS a moment.
      await waitUntil('the checkpoint to reach the last event', async () => position(await loadCheckpoint(pool, consumer)) === position(last));
    } finally {
      await pool.end();
    }
  });

  it('is fenced by its checkpoint: once another instance moved it, the relay stops and leaves it alone', async () => {
    const { pool, env, consumer } = await setting();
    try {
      const publishes = watchPublishes(env['NATS_SUBJECT_PREFIX']!);
      const relay = await startRelay(env, 'relay');
      await appendMany(pool, 50, 'before');
      await publishedUpTo(pool, publishes);

      // Another writer of the checkpoint (a second leader that believes it holds the lease) moves it on.
      const log = await readWholeLog(pool);
      const elsewhere = { transactionId: log.at(-1)!.transactionId + 1_000n, globalPosition: log.at(-1)!.globalPosition + 1_000n };
      await pool.query(sql.unsafe`
        UPDATE feed_checkpoints SET transaction_id = ${elsewhere.transactionId.toString()}::xid8,
          global_position = ${elsewhere.globalPosition.toString()}
        WHERE consumer = ${consumer}`);

      await appendNext(pool, 'after-the-fence', { i: 0 });
      expect(await relay.exited).toBe(1);
      expect(relay.output()).toMatch(/was moved by another instance/);
      expect(position(await loadCheckpoint(pool, consumer))).toBe(position(elsewhere));
    } finally {
      await pool.end();
    }
  });
});
