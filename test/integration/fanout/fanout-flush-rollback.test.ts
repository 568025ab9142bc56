import type { NatsConnection, Subscription } from 'nats';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conversationDecider } from '../../../src/commands/conversation/conversation.js';
import { sendMessage, startConversation, type CommandDeps } from '../../../src/commands/conversation/conversation-commands.js';
import { handleCommand } from '../../../src/commands/handle-command.js';
import { FEED_START } from '../../../src/event-store/recorded-event.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { expectedFrames, listenToDeliveries } from '../../support/delivered-frames.js';
import { readFeedEventually } from '../../support/event-log.js';
import { createTestDatabase, natsUrl, testPrefix, testRoleEnv, testStreamName } from '../../support/infra.js';
import { connectTestNats, consumerAckedAll, storedCount } from '../../support/jetstream.js';
import { spawnRole, stopAllRoles } from '../../support/processes.js';
import { hostAndPort, startTcpProxy } from '../../support/tcp-proxy.js';
import { waitUntil } from '../../support/wait-until.js';

const DURABLE = 'fanout';

let nc: NatsConnection;
const subscriptions: Subscription[] = [];

beforeAll(async () => {
  nc = await connectTestNats(natsUrl());
});
afterAll(async () => {
  for (const subscription of subscriptions.splice(0)) subscription.unsubscribe();
  await stopAllRoles();
  await nc.close();
});

const waitFor = (what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> =>
  waitUntil(what, async () => condition(), { timeoutMs, intervalMs: 50 });

/**
 * The fan-out has handled all `count` events of the stream: stored, delivered and acked. It acks an event
 * only after the server confirmed its frames, so their frames were published before what it publishes next.
 */
async function allAcked(stream: string, count: number): Promise<boolean> {
  return (await storedCount(nc, stream)) === count && (await consumerAckedAll(nc, stream, DURABLE));
}

/** The client sent `frames` publishes on delivery subjects, then a PING: a flush of their batch. */
function flushedFrames(sent: string, prefix: string, frames: number): boolean {
  const publishes = [...sent.matchAll(new RegExp(`PUB ${prefix}\\.to\\.\\d+\\.events `, 'g'))];
  const last = publishes.at(-1)?.index ?? -1;
  return publishes.length >= frames && sent.indexOf('PING\r\n', last) > last;
}

describe('the fan-out when a flush fails', { timeout: 120_000 }, () => {
  it('publishes every event of the batch again, each once, in order and with the block of its time, after reconnecting', async () => {
    const databaseUrl = await createTestDatabase();
    const prefix = testPrefix();
    const stream = testStreamName(prefix);
    const env = { ...testRoleEnv({ databaseUrl, prefix }), FANOUT_ACK_WAIT_MS: '1000', FANOUT_DURABLE: DURABLE };
    const pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 4 });
    const deps: CommandDeps = { pool, clock: () => new Date(), newId: monotonicFactory() };
    // Only the fan-out goes through the proxy; the relay and the test's own connection do not.
    const proxy = await startTcpProxy(hostAndPort(natsUrl()));
    try {
      const [alice, bob, carol, dave] = [1, 2, 3, 4];
      const { received, subscriptions: listening } = listenToDeliveries(nc, prefix, [alice, bob, carol, dave]);
      subscriptions.push(...listening);
      await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
      const fanout = await spawnRole({ name: 'fanout', entry: 'src/fanout/main.ts', env: { ...env, NATS_URL: proxy.url } });
      await fanout.waitForOutput(/fanning out/, 60_000);

      const aliceBob = (await startConversation(deps, { initiatorId: alice, otherUserId: bob })).conversationId;
      const carolDave = (await startConversation(deps, { initiatorId: carol, otherUserId: dave })).conversationId;
      await waitFor('the two starts fanned out and acked', () => allAcked(stream, 2));

      // The fan-out hears nothing while four events are appended, then all of them at once: one batch,
      // two versions of each conversation. Its frames and its flush's PING never reach the server. Alice's
      // message and then her block are in it: published again, the message must still reach Bob, so the
      // block the fan-out keeps must go back to before the batch with the version.
      proxy.deafen();
      await sendMessage(deps, { conversationId: aliceBob, senderId: alice, content: 'ab before the block' });
      await sendMessage(deps, { conversationId: carolDave, senderId: dave, content: 'cd 0' });
      await handleCommand(pool, conversationDecider, aliceBob, { type: 'BlockConversation', userId: alice, now: new Date() });
      await sendMessage(deps, { conversationId: carolDave, senderId: dave, content: 'cd 1' });
      const cut = (await readFeedEventually(pool, FEED_START, 6)).slice(2);
      await waitFor('the four events on their way to the fan-out', () => cut.every((event) => proxy.held().includes(event.eventId)));
      proxy.mute();
      await waitFor('the flush of their eight frames', () => flushedFrames(proxy.dropped(), prefix, 8));
      proxy.cut();
      const failed = await fanout.waitForOutput(/"events":\d+,"msg":"flush failed: the batch will be published again"/, 60_000);
      expect(failed).toContain('"events":4,');

      // Barrier: everything is acked again, then each user gets a sentinel frame on the same connection.
      await waitFor('the batch published again and acked', () => allAcked(stream, 6));
      const aliceCarol = (await startConversation(deps, { initiatorId: alice, otherUserId: carol })).conversationId;
      const bobDave = (await startConversation(deps, { initiatorId: bob, otherUserId: dave })).conversationId;
      const sentinels = new Map([
        [alice, aliceCarol],
        [carol, aliceCarol],
        [bob, bobDave],
        [dave, bobDave],
      ]);
      await waitFor('each user’s sentinel frame', () =>
        [...sentinels].every(([user, conversationId]) =>
          received.get(user)!.some((frame) => frame.conversation_id === conversationId),
        ),
      );

      const log = await readFeedEventually(pool, FEED_START, 8);
      const conversations = new Map([
        [aliceBob, [alice, bob]],
        [carolDave, [carol, dave]],
        [aliceCarol, [alice, carol]],
        [bobDave, [bob, dave]],
      ]);
      // Seq 1, 2, 3 of each conversation, once each, in order: nothing of the cut batch lost or repeated.
      for (const user of [alice, bob, carol, dave]) expect(received.get(user)).toEqual(expectedFrames(log, conversations, user));
      expect(received.get(bob)!.filter((frame) => frame.conversation_id === aliceBob).map((frame) => frame.type)).toEqual([
        'conversation_created',
        'new_message',
        'conversation_removed',
      ]);
      expect(received.get(alice)!.filter((frame) => frame.conversation_id === aliceBob).at(-1)).toMatchObject({
        type: 'conversation_blocked',
        data: { blocked_by: alice },
      });
      expect(proxy.connections()).toBeGreaterThanOrEqual(2);
    } finally {
      await stopAllRoles();
      await proxy.close();
      await pool.end();
    }
  });
});
