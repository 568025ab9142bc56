import { Writable } from 'node:stream';
import type { NatsConnection, Subscription } from 'nats';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  markConversationRead,
  sendMessage,
  startConversation,
  type CommandDeps,
} from '../../../src/commands/conversation/conversation-commands.js';
import { readStream } from '../../../src/event-store/read-stream.js';
import { FEED_START, type RecordedEvent } from '../../../src/event-store/recorded-event.js';
import { type EventFrame } from '../../../src/delivery/event-frames.js';
import { createFanoutMetrics } from '../../../src/fanout/fanout-metrics.js';
import { startFanout } from '../../../src/fanout/fanout.js';
import { toEventMessage } from '../../../src/relay/event-message.js';
import { ensureEventStream } from '../../../src/relay/event-stream.js';
import { createLeaderLease } from '../../../src/shared/leader-lease.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { connectNats, eventSubject } from '../../../src/shared/nats.js';
import { expectedFrames, listenToDeliveries, unblockedFrameFor } from '../../support/delivered-frames.js';
import { readFeedEventually } from '../../support/event-log.js';
import { createTestDatabase, natsCredentials, natsUrl, testPrefix, testRoleEnv, testStreamName } from '../../support/infra.js';
import { connectTestNats, consumerAckedAll, waitForStoredCount } from '../../support/jetstream.js';
import { waitUntil } from '../../support/wait-until.js';
import { spawnRole } from '../../support/processes.js';

type RoleProcess = Awaited<ReturnType<typeof spawnRole>>;

let nc: NatsConnection;
const running: RoleProcess[] = [];
const subscriptions: Subscription[] = [];

beforeAll(async () => {
  nc = await connectTestNats(natsUrl());
});
afterEach(async () => {
  for (const subscription of subscriptions.splice(0)) subscription.unsubscribe();
  await Promise.all(running.splice(0).map((role) => role.stop()));
});
afterAll(async () => {
  await nc.close();
});

type Setting = {
  pool: DatabasePool;
  deps: CommandDeps;
  databaseUrl: string;
  prefix: string;
  stream: string;
  env: Record<string, string>;
};

/** Each test gets its own database, stream and subjects. */
async function setting(): Promise<Setting> {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  const stream = testStreamName(prefix);
  const env = {
    ...testRoleEnv({ databaseUrl, prefix }),
    RELAY_BATCH_SIZE: '100',
    FANOUT_ACK_WAIT_MS: '1000',
    FANOUT_LEASE_RETRY_MS: '200',
    LOG_LEVEL: 'info',
  };
  const pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 10 });
  return { pool, deps: { pool, clock: () => new Date(), newId: monotonicFactory() }, databaseUrl, prefix, stream, env };
}

async function startRole(name: string, entry: string, env: Record<string, string>): Promise<RoleProcess> {
  const role = await spawnRole({ name, entry, env });
  running.push(role);
  return role;
}

async function startFanoutProcess(env: Record<string, string>, name = 'fanout'): Promise<RoleProcess> {
  const fanout = await startRole(name, 'src/fanout/main.ts', env);
  // The durable starts at the stream's end when first created: no event may be appended before it exists.
  await fanout.waitForOutput(/fanning out/, 30_000);
  return fanout;
}

/** Every frame published on each user's delivery subject, until the test ends. */
function listen(prefix: string, userIds: readonly number[]): Map<number, EventFrame[]> {
  const { received, subscriptions: listening } = listenToDeliveries(nc, prefix, userIds);
  subscriptions.push(...listening);
  return received;
}

/** Users no test watches: each watched user's sentinel conversation is with the next one of these. */
let nextSentinelUser = 1_000;

/**
 * The barrier for "nothing else arrived": each user starts a conversation with a user nobody watches, after
 * everything else. One fan-out publishes in stream order on one connection, so once a user's sentinel
 * frame is in, a frame of any earlier event (a repeat, a stray) is in before it.
 * @returns each user's frames before the sentinel.
 */
async function framesBeforeSentinels(
  deps: CommandDeps,
  received: ReadonlyMap<number, readonly EventFrame[]>,
  users: readonly number[],
): Promise<Map<number, EventFrame[]>> {
  const sentinels = new Map<number, string>();
  const sentinelUser = nextSentinelUser++;
  for (const user of users) {
    sentinels.set(user, (await startConversation(deps, { initiatorId: user, otherUserId: sentinelUser })).conversationId);
  }
  const sentinelAt = (user: number) => received.get(user)!.findIndex((frame) => frame.conversation_id === sentinels.get(user));
  await waitFor('every sentinel frame', () => users.every((user) => sentinelAt(user) >= 0));
  return new Map(users.map((user) => [user, received.get(user)!.slice(0, sentinelAt(user))]));
}

/** The fan-out acked every event stored: none is pending, so none comes back (redelivered) after this. */
const everythingAcked = (stream: string) => waitUntil('every event acked', () => consumerAckedAll(nc, stream, 'fanout'));

/**
 * What a gateway writes to one socket: per conversation, a frame whose seq is not above the last one sent
 * is dropped (a repeat after a fan-out restart).
 */
function asGatewaySends(frames: readonly EventFrame[]): EventFrame[] {
  const lastSent = new Map<string, number>();
  return frames.filter((frame) => {
    if (frame.seq <= (lastSent.get(frame.conversation_id) ?? 0)) return false;
    lastSent.set(frame.conversation_id, frame.seq);
    return true;
  });
}

/** Polls a condition on what was received so far. */
const waitFor = (what: string, condition: () => boolean, timeoutMs = 60_000): Promise<void> =>
  waitUntil(what, () => Promise.resolve(condition()), { timeoutMs, intervalMs: 50 });

// Each test spawns a relay and one or two fan-outs and waits on them: generous on a loaded 2-core machine.
describe('the fan-out role', { timeout: 120_000 }, () => {
  it('delivers every event to both participants, in seq order, as API frames, and nothing to anyone else', async () => {
    const { pool, deps, prefix, env } = await setting();
    try {
      const [alice, bob, carol, dave, eve] = [1, 2, 3, 4, 5];
      const received = listen(prefix, [alice, bob, carol, dave, eve]);
      await startRole('relay', 'src/relay/main.ts', env);
      const fanout = await startFanoutProcess(env);

      const aliceBob = (await startConversation(deps, { initiatorId: bob, otherUserId: alice })).conversationId;
      const carolDave = (await startConversation(deps, { initiatorId: carol, otherUserId: dave })).conversationId;
      for (let i = 0; i < 20; i++) {
        await sendMessage(deps, { conversationId: aliceBob, senderId: i % 3 === 0 ? bob : alice, content: `ab ${i}`, clientMsgId: `ab-${i}` });
        await sendMessage(deps, { conversationId: carolDave, senderId: carol, content: `cd ${i}` });
        if (i % 5 === 4) {
          await markConversationRead(deps, { conversationId: aliceBob, readerId: bob });
          await markConversationRead(deps, { conversationId: carolDave, readerId: dave });
        }
      }
      // 2 starts, 40 messages, 4 reads by bob (alice wrote since each), 4 by dave.
      const log = await readFeedEventually(pool, FEED_START, 50);
      expect(log).toHaveLength(50);
      const conversations = new Map([
        [aliceBob, [alice, bob]],
        [carolDave, [carol, dave]],
      ]);
      const expected = new Map([alice, bob, carol, dave].map((user) => [user, expectedFrames(log, conversations, user)]));
      const before = await framesBeforeSentinels(deps, received, [alice, bob, carol, dave, eve]);

      // Exactly the frames of their conversations, once each, in feed order (which is seq order per conversation).
      for (const [user, frames] of expected) expect(before.get(user)).toEqual(frames);
      expect(before.get(eve)).toEqual([]);
      expect(expected.get(alice)).toEqual(expected.get(bob));
      // The start, 20 messages, 4 reads: seq 1..25.
      expect(expected.get(alice)!.map((frame) => frame.seq)).toEqual(Array.from({ length: 25 }, (_, index) => index + 1));

      // The shapes of API.md, checked on real frames beyond what the schema already enforced.
      const aliceFrames = before.get(alice)!;
      expect(aliceFrames[0]).toMatchObject({
        type: 'conversation_created',
        conversation_id: aliceBob,
        seq: 1,
        data: { id: aliceBob, user1_id: alice, user2_id: bob, last_message_content: null, unread_count: 0 },
      });
      expect(aliceFrames[1]).toMatchObject({
        type: 'new_message',
        seq: 2,
        data: { sender_id: bob, message: 'ab 0', read_at: null, client_msg_id: 'ab-0' },
      });
      expect(aliceFrames.find((frame) => frame.type === 'messages_read')).toMatchObject({ data: { reader_id: bob } });
      for (const frame of aliceFrames) expect(frame.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);

      // SIGTERM: it finishes the batch in flight and stops in phases, with exit code 0.
      await fanout.stop();
      expect(await fanout.exited).toBe(0);
      expect(fanout.output()).toMatch(/"msg":"stopped"/);
    } finally {
      await pool.end();
    }
  });

  it('after a SIGKILL mid-stream and a restart, gives both participants every seq in order, none missing', async () => {
    const { pool, deps, prefix, stream, env } = await setting();
    try {
      const users = [11, 12, 13, 14];
      const received = listen(prefix, users);
      await startRole('relay', 'src/relay/main.ts', env);
      // The production ack wait: the restarted fan-out pulls new events well before JetStream redelivers
      // those the killed one held, so it sees newer versions of a conversation before older ones.
      const slowRedelivery = { ...env, FANOUT_ACK_WAIT_MS: '5000' };
      const first = await startFanoutProcess(slowRedelivery, 'fanout-1');

      // Every pair of the four users talks: six conversations, four concurrent writers.
      const conversations = new Map<string, number[]>();
      for (const [i, a] of users.entries()) {
        for (const b of users.slice(i + 1)) {
          conversations.set((await startConversation(deps, { initiatorId: a, otherUserId: b })).conversationId, [a, b]);
        }
      }
      const ids = [...conversations.keys()];
      const total = 600;
      let next = 0;
      let written = 0;
      const writing = Promise.all(
        Array.from({ length: 4 }, async () => {
          while (next < total) {
            const i = next++;
            const conversationId = ids[i % ids.length]!;
            const [a, b] = conversations.get(conversationId)!;
            const sender = i % 2 === 0 ? a! : b!;
            await sendMessage(deps, { conversationId, senderId: sender, content: `m${i}` });
            if (i % 25 === 0) await markConversationRead(deps, { conversationId, readerId: sender === a ? b! : a! });
            written++;
          }
        }),
      );

      const count = () => [...received.values()].reduce((sum, frames) => sum + frames.length, 0);
      await waitFor('the first frames', () => count() >= 200);
      first.kill('SIGKILL');
      await first.exited;
      const atKill = count();
      const writtenAtKill = written;
      await waitFor('events written while no fan-out runs', () => written >= Math.min(total, writtenAtKill + 20));
      await startFanoutProcess(slowRedelivery, 'fanout-2');
      await writing;

      const log = await readFeedEventually(pool, FEED_START, 6 + total, 30_000);
      const expected = new Map(users.map((user) => [user, expectedFrames(log, conversations, user)]));
      const expectedTotal = [...expected.values()].reduce((sum, frames) => sum + frames.length, 0);
      expect(atKill).toBeLessThan(expectedTotal);
      // Nothing left to redeliver, then the sentinels: every frame of the log's events is in before them.
      await waitForStoredCount(nc, stream, log.length);
      await everythingAcked(stream);
      const before = await framesBeforeSentinels(deps, received, users);

      for (const user of users) {
        const frames = before.get(user)!;
        const sent = asGatewaySends(frames);
        // Per conversation: 1, 2, 3, ... in order, every seq, as the log has them.
        for (const conversationId of ids) {
          if (!conversations.get(conversationId)!.includes(user)) continue;
          const seqs = sent.filter((frame) => frame.conversation_id === conversationId).map((frame) => frame.seq);
          const last = log.filter((event) => event.streamId === conversationId).length;
          expect(seqs).toEqual(Array.from({ length: last }, (_, index) => index + 1));
        }
        // And the frames themselves are the log's, whatever was repeated around the restart.
        const byKey = (list: readonly EventFrame[]) =>
          [...list].sort((x, y) => x.conversation_id.localeCompare(y.conversation_id) || x.seq - y.seq);
        expect(byKey(sent)).toEqual(byKey(expected.get(user)!));
        // Nothing but repeats: every extra frame equals one already received.
        const seen = new Set(sent.map((frame) => JSON.stringify(frame)));
        for (const frame of frames) expect(seen.has(JSON.stringify(frame))).toBe(true);
        // Never a conversation the user is not in.
        for (const frame of frames) expect(conversations.get(frame.conversation_id)).toContain(user);
      }
    } finally {
      await pool.end();
    }
  });

  it('runs one active fan-out among two; the standby takes over when the active one is killed', async () => {
    const { pool, deps, prefix, stream, env } = await setting();
    try {
      const [alice, bob] = [31, 32];
      const received = listen(prefix, [alice, bob]);
      await startRole('relay', 'src/relay/main.ts', env);
      const active = await startFanoutProcess(env, 'fanout-a');
      const standby = await startRole('fanout-b', 'src/fanout/main.ts', env);
      await standby.waitForOutput(/waiting for the fan-out lease/);

      const conversationId = (await startConversation(deps, { initiatorId: alice, otherUserId: bob })).conversationId;
      for (let i = 0; i < 20; i++) await sendMessage(deps, { conversationId, senderId: i % 2 ? alice : bob, content: `m${i}` });
      const beforeKill = await framesBeforeSentinels(deps, received, [alice, bob]);
      // Two active instances would both publish, or split one conversation between them.
      expect(standby.output()).not.toMatch(/fanning out/);
      for (const user of [alice, bob]) {
        expect(beforeKill.get(user)!.map((frame) => frame.seq)).toEqual(Array.from({ length: 21 }, (_, index) => index + 1));
      }

      active.kill('SIGKILL');
      await active.exited;
      for (let i = 20; i < 40; i++) await sendMessage(deps, { conversationId, senderId: i % 2 ? alice : bob, content: `m${i}` });
      await standby.waitForOutput(/fanning out/);
      // The start, 40 messages and the two sentinel starts: nothing left to redeliver, then new sentinels.
      await waitForStoredCount(nc, stream, 43);
      await everythingAcked(stream);
      const afterTakeover = await framesBeforeSentinels(deps, received, [alice, bob]);
      for (const user of [alice, bob]) {
        const frames = afterTakeover.get(user)!.filter((frame) => frame.conversation_id === conversationId);
        expect(asGatewaySends(frames).map((frame) => frame.seq)).toEqual(Array.from({ length: 41 }, (_, index) => index + 1));
      }
    } finally {
      await pool.end();
    }
  });

  it('fills a gap from the Postgres log, skips redelivered and late versions, and passes over what is no conversation', async () => {
    const { pool, deps, databaseUrl, prefix, stream } = await setting();
    const lines: string[] = [];
    const logger = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _encoding, callback) {
          lines.push(chunk.toString());
          callback();
        },
      }),
    );
    const fanoutNats = await connectNats({ url: natsUrl(), name: 'fanout-in-test', ...natsCredentials('fanout') });
    const jsm = await fanoutNats.jetstreamManager();
    // The test stands in for the relay, which creates the stream: the fan-out's user may not.
    await ensureEventStream(await nc.jetstreamManager(), { name: stream, subjectPrefix: prefix, retentionDays: 1, replicas: 1 });
    const lease = await createLeaderLease({ databaseUrl, name: `fanout:${stream}`, retryMs: 200 });
    const fanout = startFanout({
      pool,
      nc: fanoutNats,
      js: fanoutNats.jetstream(),
      jsm,
      lease,
      logger,
      streamName: stream,
      subjectPrefix: prefix,
      durableName: 'fanout',
      ackWaitMs: 1_000,
      cacheSize: 100,
      metrics: createFanoutMetrics(new Registry()),
    });
    try {
      const [alice, bob] = [21, 22];
      const received = listen(prefix, [alice, bob]);
      const conversationId = (await startConversation(deps, { initiatorId: alice, otherUserId: bob })).conversationId;
      for (let i = 1; i <= 5; i++) await sendMessage(deps, { conversationId, senderId: i % 2 ? alice : bob, content: `m${i}` });
      const events = await readStream(pool, conversationId);
      expect(events.map((event) => event.version)).toEqual([1, 2, 3, 4, 5, 6]);
      await waitFor('the consumer', () => lines.some((line) => line.includes('fanning out')), 30_000);

      // Stands in for the relay, with JetStream losing and reordering: 1, 2, 4 (3 missing), 3 late,
      // 2 again (a redelivery), then 5, 6, and 6 again (a repeat of the last version published).
      const js = nc.jetstream();
      const publish = async (event: RecordedEvent, msgID = event.eventId) => {
        const message = toEventMessage(event);
        await js.publish(eventSubject(prefix, event.streamId), message.body, { msgID, headers: message.headers });
      };
      const [v1, v2, v3, v4, v5, v6] = events as [RecordedEvent, ...RecordedEvent[]];
      for (const event of [v1, v2, v4]) await publish(event!);
      // Neither a conversation nor a known event type: terminated and logged, nothing is published.
      await publish({ ...v1, streamId: 'not-a-conversation', type: 'TestEvent', data: {}, eventId: 'stray' });
      await publish(v3!, `${v3!.eventId}-late`);
      await publish(v2!, `${v2!.eventId}-again`);
      for (const event of [v5, v6]) await publish(event!);
      await publish(v6!, `${v6!.eventId}-again`);

      // The sentinel, version 7, published last: its frame comes after anything the fan-out made of the rest.
      await sendMessage(deps, { conversationId, senderId: alice, content: 'sentinel' });
      const [v7] = await readStream(pool, conversationId, { afterVersion: 6 });
      await publish(v7!);
      const sentinelAt = (user: number) => received.get(user)!.findIndex((frame) => frame.seq === 7);
      await waitFor('the sentinel frame', () => sentinelAt(alice) >= 0 && sentinelAt(bob) >= 0);

      const expected = events.map(unblockedFrameFor(alice));
      expect(received.get(alice)!.slice(0, sentinelAt(alice))).toEqual(expected);
      expect(received.get(bob)!.slice(0, sentinelAt(bob))).toEqual(expected);
      expect(lines.some((line) => line.includes('gap filled from the log'))).toBe(true);
      expect(lines.some((line) => line.includes('event of no conversation'))).toBe(true);
    } finally {
      await fanout.stop();
      await lease.close();
      await fanoutNats.drain();
      await pool.end();
    }
  });
});
