import type { NatsConnection } from 'nats';
import type { DatabasePool } from 'slonik';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createDatabasePool } from '../../../src/shared/database.js';
import { sleep } from '../../../src/shared/sleep.js';
import { appendNext, oneToN } from '../../support/event-log.js';
import { createTestDatabase, natsUrl, testPrefix, testRoleEnv, testStreamName } from '../../support/infra.js';
import { connectTestNats, readAllStored, storedCount, waitForStoredCount, type StoredEventMessage } from '../../support/jetstream.js';
import { spawnRole } from '../../support/processes.js';

type RoleProcess = Awaited<ReturnType<typeof spawnRole>>;

let nc: NatsConnection;
const running: RoleProcess[] = [];

beforeAll(async () => {
  nc = await connectTestNats(natsUrl());
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((relay) => relay.stop()));
});
afterAll(async () => {
  await nc.close();
});

/** Each test gets its own database, stream and subjects. */
async function setting(): Promise<{ pool: DatabasePool; env: Record<string, string>; stream: string }> {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  const stream = testStreamName(prefix);
  const env = {
    ...testRoleEnv({ databaseUrl, prefix }),
    RELAY_BATCH_SIZE: '100',
    RELAY_LEASE_RETRY_MS: '200',
    LOG_LEVEL: 'info',
  };
  return { pool: await createDatabasePool({ url: databaseUrl, maximumPoolSize: 10 }), env, stream };
}

async function startRelay(env: Record<string, string>, name = 'relay'): Promise<RoleProcess> {
  const relay = await spawnRole({ name, entry: 'src/relay/main.ts', env });
  running.push(relay);
  return relay;
}

/** `count` single-event appends by `writers` concurrent writers spread over `streams` conversations. */
async function appendConcurrently(pool: DatabasePool, options: { count: number; writers: number; streams: number; tag: string }) {
  let next = 0;
  await Promise.all(
    Array.from({ length: options.writers }, async () => {
      while (next < options.count) {
        const i = next++;
        await appendNext(pool, `${options.tag}-conversation-${i % options.streams}`, { i });
      }
    }),
  );
}

/**
 * The barrier instead of a pause: a sentinel appended after everything else is stored last, since one relay
 * publishes in feed order; once it is there, anything extra (a repeat) would be stored before it.
 * @returns what the stream holds before the sentinel.
 */
async function storedBeforeASentinel(pool: DatabasePool, stream: string, expected: number): Promise<StoredEventMessage[]> {
  const [sentinel] = await appendNext(pool, `sentinel-${expected}`, { sentinel: true });
  await waitForStoredCount(nc, stream, expected + 1);
  const stored = await readAllStored(nc, stream);
  expect(stored.at(-1)?.event_id).toBe(sentinel!.eventId);
  return stored.slice(0, -1);
}

/** Exactly once (distinct Nats-Msg-Id = stored = expected) and, per conversation, versions 1..n in order. */
function expectExactlyOnceInOrder(stored: readonly StoredEventMessage[], expected: number): void {
  expect(stored).toHaveLength(expected);
  expect(new Set(stored.map((message) => message.msgId)).size).toBe(expected);
  for (const message of stored) expect(message.msgId).toBe(message.event_id);
  const byConversation = new Map<string, number[]>();
  for (const message of stored) {
    byConversation.set(message.stream_id, [...(byConversation.get(message.stream_id) ?? []), message.version]);
  }
  for (const versions of byConversation.values()) expect(versions).toEqual(oneToN(versions.length));
}

// Each test appends 6,000 to 10,000 events through one or two relay processes: over a minute on a loaded
// 2-core machine.
describe('the relay', { timeout: 240_000 }, () => {
  it('publishes 10,000 events from concurrent writers exactly once each, in version order per conversation', async () => {
    const { pool, env, stream } = await setting();
    try {
      await startRelay(env);
      await appendConcurrently(pool, { count: 10_000, writers: 8, streams: 100, tag: 'bulk' });
      await waitForStoredCount(nc, stream, 10_000);
      expectExactlyOnceInOrder(await storedBeforeASentinel(pool, stream, 10_000), 10_000);
    } finally {
      await pool.end();
    }
  });

  it('still gives exactly once and nothing missing when killed with SIGKILL mid-stream and restarted', async () => {
    const { pool, env, stream } = await setting();
    try {
      const first = await startRelay({ ...env, RELAY_BATCH_SIZE: '20' }, 'relay-1');
      const writing = appendConcurrently(pool, { count: 10_000, writers: 8, streams: 100, tag: 'killed' });
      while ((await storedCount(nc, stream)) < 2_000) await sleep(20);
      first.kill('SIGKILL');
      await first.exited;
      const atKill = await storedCount(nc, stream);
      expect(atKill).toBeLessThan(10_000);

      await startRelay({ ...env, RELAY_BATCH_SIZE: '20' }, 'relay-2');
      await writing;
      await waitForStoredCount(nc, stream, 10_000);
      expectExactlyOnceInOrder(await storedBeforeASentinel(pool, stream, 10_000), 10_000);
    } finally {
      await pool.end();
    }
  });

  it('runs one publisher among two relays, and the survivor takes over when the active one is killed', async () => {
    const { pool, env, stream } = await setting();
    try {
      const a = await startRelay(env, 'relay-a');
      await a.waitForOutput(/leadership acquired/, 30_000);
      const b = await startRelay(env, 'relay-b');
      await b.waitForOutput(/waiting for leadership/, 30_000);

      await appendConcurrently(pool, { count: 3_000, writers: 4, streams: 30, tag: 'pair' });
      await waitForStoredCount(nc, stream, 3_000);
      expect(b.output()).not.toMatch(/leadership acquired/);

      a.kill('SIGKILL');
      await a.exited;
      await appendConcurrently(pool, { count: 3_000, writers: 4, streams: 30, tag: 'pair' });
      await b.waitForOutput(/leadership acquired/, 30_000);
      await waitForStoredCount(nc, stream, 6_000);
      expectExactlyOnceInOrder(await storedBeforeASentinel(pool, stream, 6_000), 6_000);
    } finally {
      await pool.end();
    }
  });
});
