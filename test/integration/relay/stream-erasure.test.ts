import type { JetStreamClient, JetStreamManager, NatsConnection } from 'nats';
import { sql, type DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { sendMessage, startConversation, type CommandDeps } from '../../../src/commands/conversation/conversation-commands.js';
import { deleteMessageForEveryone } from '../../../src/commands/conversation/delete-message.js';
import type { RecordedEvent } from '../../../src/event-store/recorded-event.js';
import { readStream } from '../../../src/event-store/read-stream.js';
import { toEventMessage } from '../../../src/relay/event-message.js';
import { ensureEventStream } from '../../../src/relay/event-stream.js';
import { eraseFromStream, type StreamErasureDeps } from '../../../src/relay/stream-erasure.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { createLogger } from '../../../src/shared/logger.js';
import { eventSubject } from '../../../src/shared/nats.js';
import { streamMessagesHolding, uniqueText } from '../../support/erased-text.js';
import { createTestDatabase, natsUrl, testPrefix, testStreamName } from '../../support/infra.js';
import { connectTestNats, readAllStored } from '../../support/jetstream.js';

/**
 * The relay's erasure step on its own (the relay's loop calls it after each batch): the test publishes as
 * the relay would, including a stale read of a message taken before its delete committed, and moves the
 * checkpoint by hand.
 */

let pool: DatabasePool;
let nc: NatsConnection;
let js: JetStreamClient;
let jsm: JetStreamManager;
let commands: CommandDeps;
let erasure: StreamErasureDeps;
let prefix: string;
let stream: string;

beforeAll(async () => {
  pool = await createDatabasePool({ url: await createTestDatabase(), maximumPoolSize: 4 });
  nc = await connectTestNats(natsUrl());
  js = nc.jetstream();
  jsm = await nc.jetstreamManager();
  prefix = testPrefix();
  stream = testStreamName(prefix);
  await ensureEventStream(jsm, { name: stream, subjectPrefix: prefix, retentionDays: 1, replicas: 1 });
  commands = { pool, clock: () => new Date(), newId: monotonicFactory() };
  erasure = { pool, jsm, logger: createLogger({ role: 'test', level: 'warn' }), streamName: stream, subjectPrefix: prefix };
});
afterAll(async () => {
  await jsm.streams.delete(stream).catch(() => undefined);
  await nc.close();
  await pool.end();
});

/** Publishes events as the relay does (same subject, headers and message id); `msgID: false` for a copy JetStream would not drop. */
async function publish(events: readonly RecordedEvent[], options: { msgID?: boolean } = {}): Promise<void> {
  for (const event of events) {
    const message = toEventMessage(event);
    await js.publish(eventSubject(prefix, event.streamId), message.body, {
      ...(options.msgID !== false && { msgID: event.eventId }),
      headers: message.headers,
    });
  }
}

let nextUser = 7000;

/** A conversation of a few messages, one of them with a unique text; everything published. */
async function publishedConversation(): Promise<{ conversationId: string; sender: number; messageId: string; text: string }> {
  const [a, b] = [++nextUser, ++nextUser];
  const { conversationId } = await startConversation(commands, { initiatorId: a, otherUserId: b });
  await sendMessage(commands, { conversationId, senderId: b, content: 'before' });
  const text = uniqueText('erase me from the stream');
  const sent = await sendMessage(commands, { conversationId, senderId: a, content: text });
  await sendMessage(commands, { conversationId, senderId: b, content: 'after' });
  await publish(await readStream(pool, conversationId));
  return { conversationId, sender: a, messageId: sent.id, text };
}

/** Traffic of other conversations, so that the search for the erased copy crosses a stream of some length. */
async function otherTraffic(count: number): Promise<void> {
  const [a, b] = [++nextUser, ++nextUser];
  const { conversationId } = await startConversation(commands, { initiatorId: a, otherUserId: b });
  for (let i = 0; i < count; i++) await sendMessage(commands, { conversationId, senderId: i % 2 ? a : b, content: `noise ${i}` });
  await publish(await readStream(pool, conversationId));
}

const pendingRow = z.object({ pending: z.coerce.number().int() });
const pendingErasures = () =>
  pool.oneFirst(sql.type(pendingRow)`SELECT count(*) AS pending FROM event_erasures WHERE jetstream_erased_at IS NULL`);

describe('eraseFromStream', () => {
  it('deletes every copy of the erased message once the checkpoint passed its delete, and not before', async () => {
    await otherTraffic(60);
    const [a, b] = [++nextUser, ++nextUser];
    const { conversationId } = await startConversation(commands, { initiatorId: a, otherUserId: b });
    const text = uniqueText('stale read');
    const sent = await sendMessage(commands, { conversationId, senderId: a, content: text });
    // The relay read the message with its text before the delete committed...
    const staleRead = await readStream(pool, conversationId);
    await deleteMessageForEveryone(commands, { messageId: sent.id, requesterId: a });
    await otherTraffic(40);
    // ...and publishes it after the delete: twice, as a relay whose copy escaped the duplicate window would.
    await publish(staleRead);
    await publish(staleRead.slice(-1), { msgID: false });
    await otherTraffic(30);
    expect(await streamMessagesHolding(nc, text, stream)).toHaveLength(2);

    // The checkpoint is before the delete: nothing is erased, nothing is marked done.
    expect(await eraseFromStream(erasure, staleRead.at(-1)!)).toEqual({ erased: 0, waiting: true });
    expect(await pendingErasures()).toBe(1);
    expect(await streamMessagesHolding(nc, text, stream)).toHaveLength(2);

    const [deleteEvent] = await readStream(pool, conversationId, { afterVersion: sent.version });
    await publish([deleteEvent!]);
    await otherTraffic(20);
    expect(await eraseFromStream(erasure, deleteEvent!)).toEqual({ erased: 1, waiting: false });
    expect(await pendingErasures()).toBe(0);
    expect(await streamMessagesHolding(nc, text, stream)).toEqual([]);
    // Only the two copies went: every other event of the conversation is still there.
    const left = (await readAllStored(nc, stream)).filter((message) => message.stream_id === conversationId);
    expect(left.map((message) => [message.version, message.type])).toEqual([
      [1, 'ConversationStarted'],
      [3, 'MessageDeleted'],
    ]);
  });

  it('does again an erasure left unmarked (a relay that died after the delete), and erases a copy published already erased', async () => {
    const { conversationId, sender, messageId, text } = await publishedConversation();
    await deleteMessageForEveryone(commands, { messageId, requesterId: sender });
    const events = await readStream(pool, conversationId);
    await publish(events.slice(-1));
    expect(await eraseFromStream(erasure, events.at(-1)!)).toEqual({ erased: 1, waiting: false });
    await pool.query(sql.unsafe`UPDATE event_erasures SET jetstream_erased_at = NULL WHERE stream_id = ${conversationId}`);
    expect(await eraseFromStream(erasure, events.at(-1)!)).toEqual({ erased: 1, waiting: false });
    expect(await pendingErasures()).toBe(0);
    expect(await streamMessagesHolding(nc, text, stream)).toEqual([]);

    // A message deleted before it was published goes out erased (the log is), and is deleted all the same.
    const [a, b] = [++nextUser, ++nextUser];
    const { conversationId: late } = await startConversation(commands, { initiatorId: a, otherUserId: b });
    const unpublished = await sendMessage(commands, { conversationId: late, senderId: a, content: uniqueText('never published') });
    await deleteMessageForEveryone(commands, { messageId: unpublished.id, requesterId: a });
    const lateEvents = await readStream(pool, late);
    expect(lateEvents[1]).toMatchObject({ type: 'MessageSent', data: { content: null } });
    await publish(lateEvents);
    expect(await eraseFromStream(erasure, lateEvents.at(-1)!)).toEqual({ erased: 1, waiting: false });
    const stored = (await readAllStored(nc, stream)).filter((message) => message.stream_id === late);
    expect(stored.map((message) => message.type)).toEqual(['ConversationStarted', 'MessageDeleted']);
  });
});
