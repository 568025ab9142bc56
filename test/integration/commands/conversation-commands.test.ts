import { sql, type DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  blockConversation,
  markConversationRead,
  readForSends,
  retriedMessages,
  sendMessage,
  sendMessages,
  startConversation,
  unblockConversation,
  type CommandDeps,
} from '../../../src/commands/conversation/conversation-commands.js';
import { DomainError } from '../../../src/commands/domain-error.js';
import { compareFeedPositions } from '../../../src/event-store/recorded-event.js';
import { readStream } from '../../../src/event-store/read-stream.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { oneToN } from '../../support/event-log.js';
import { createTestDatabase } from '../../support/infra.js';

let pool: DatabasePool;
let deps: CommandDeps;

beforeAll(async () => {
  pool = await createDatabasePool({ url: await createTestDatabase(), maximumPoolSize: 12 });
  deps = { pool, clock: () => new Date(), newId: monotonicFactory() };
});
afterAll(async () => {
  await pool.end();
});

let nextUser = 1000;
const newUsers = (): [number, number] => [++nextUser, ++nextUser];

async function conversation(): Promise<{ id: string; a: number; b: number }> {
  const [a, b] = newUsers();
  const { conversationId } = await startConversation(deps, { initiatorId: a, otherUserId: b });
  return { id: conversationId, a, b };
}

async function eventTypes(conversationId: string): Promise<string[]> {
  return (await readStream(pool, conversationId)).map((event) => event.type);
}

async function domainErrorCode(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => null,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(DomainError);
  return (error as DomainError).code;
}

describe('startConversation', () => {
  it('gives exactly one conversation when both users create it at the same time', async () => {
    const pairs = Array.from({ length: 20 }, newUsers);
    const results = await Promise.all(
      pairs.flatMap(([a, b]) => [
        startConversation(deps, { initiatorId: a, otherUserId: b }),
        startConversation(deps, { initiatorId: b, otherUserId: a }),
        startConversation(deps, { initiatorId: a, otherUserId: b }),
      ]),
    );
    for (let i = 0; i < pairs.length; i++) {
      const forPair = results.slice(i * 3, i * 3 + 3);
      expect(new Set(forPair.map((result) => result.conversationId)).size).toBe(1);
      expect(forPair.filter((result) => result.created)).toHaveLength(1);
      const [a, b] = pairs[i]!;
      const count = await pool.oneFirst(sql.type(z.object({ count: z.number() }))`
        SELECT count(*)::int AS count FROM events e JOIN conversation_pairs p ON p.conversation_id = e.stream_id
        WHERE p.user_low = ${Math.min(a, b)} AND p.user_high = ${Math.max(a, b)} AND e.type = 'ConversationStarted'`);
      expect(count).toBe(1);
    }
  });

  it('returns the existing conversation to the other user later, and refuses oneself', async () => {
    const [a, b] = newUsers();
    const first = await startConversation(deps, { initiatorId: a, otherUserId: b });
    const second = await startConversation(deps, { initiatorId: b, otherUserId: a });
    expect(second).toEqual({ conversationId: first.conversationId, created: false });
    expect(await domainErrorCode(startConversation(deps, { initiatorId: a, otherUserId: a }))).toBe('self_conversation');
  });

  it('answers not_found to the user a conversation is blocked against, and the conversation to the blocker', async () => {
    const { id, a, b } = await conversation();
    await blockConversation(deps, { conversationId: id, userId: a });
    expect(await domainErrorCode(startConversation(deps, { initiatorId: b, otherUserId: a }))).toBe('not_found');
    expect(await startConversation(deps, { initiatorId: a, otherUserId: b })).toEqual({ conversationId: id, created: false });
    await unblockConversation(deps, { conversationId: id, userId: a });
    expect(await startConversation(deps, { initiatorId: b, otherUserId: a })).toEqual({ conversationId: id, created: false });
    expect(await eventTypes(id)).toEqual(['ConversationStarted', 'ConversationBlocked', 'ConversationUnblocked']);
  });
});

describe('blockConversation and unblockConversation', () => {
  it('record a change once, answer a repeat with nothing appended, and refuse the blocked user and strangers', async () => {
    const { id, a, b } = await conversation();
    expect(await blockConversation(deps, { conversationId: id, userId: b })).toEqual({ changed: true, version: 2 });
    expect(await blockConversation(deps, { conversationId: id, userId: b })).toEqual({ changed: false, version: 2 });
    for (const change of [blockConversation, unblockConversation]) {
      expect(await domainErrorCode(change(deps, { conversationId: id, userId: a }))).toBe('not_found');
      expect(await domainErrorCode(change(deps, { conversationId: id, userId: ++nextUser }))).toBe('not_found');
    }
    expect(await unblockConversation(deps, { conversationId: id, userId: b })).toEqual({ changed: true, version: 3 });
    expect(await unblockConversation(deps, { conversationId: id, userId: b })).toEqual({ changed: false, version: 3 });
    expect(await eventTypes(id)).toEqual(['ConversationStarted', 'ConversationBlocked', 'ConversationUnblocked']);
  });
});

describe('sendMessage', () => {
  it('appends nothing for a retry with the same client_msg_id, also when retries race', async () => {
    const { id, a } = await conversation();
    const send = () => sendMessage(deps, { conversationId: id, senderId: a, content: 'coucou', clientMsgId: 'retry-1' });
    const first = await send();
    const retries = await Promise.all([send(), send(), send(), send()]);
    for (const retry of retries) expect(retry).toEqual({ ...first, created: false, appended: null });
    // The first one appended: the event as stored and the two participants (what the fast path publishes).
    expect(first.appended?.event).toMatchObject({ type: 'MessageSent', version: first.version, streamId: id });
    expect(first.appended?.participants).toContain(a);
    expect(first.created).toBe(true);

    const racing = await Promise.all(
      Array.from({ length: 6 }, () =>
        sendMessage(deps, { conversationId: id, senderId: a, content: 'race', clientMsgId: 'race-1' }),
      ),
    );
    expect(new Set(racing.map((message) => message.id)).size).toBe(1);
    expect(racing.filter((message) => message.created)).toHaveLength(1);
    expect(await eventTypes(id)).toEqual(['ConversationStarted', 'MessageSent', 'MessageSent']);
  });

  it('refuses a non-participant with the answer given for a missing conversation, and appends nothing', async () => {
    const { id } = await conversation();
    const stranger = ++nextUser;
    expect(await domainErrorCode(sendMessage(deps, { conversationId: id, senderId: stranger, content: 'hi' }))).toBe(
      'not_found',
    );
    expect(await domainErrorCode(sendMessage(deps, { conversationId: 'missing', senderId: stranger, content: 'hi' }))).toBe(
      'not_found',
    );
    expect(await eventTypes(id)).toEqual(['ConversationStarted']);
  });

  it('holds the content limits at 0, 1, 1000 and 1001 code points, counting an emoji as one', async () => {
    const { id, a } = await conversation();
    const send = (content: string) => sendMessage(deps, { conversationId: id, senderId: a, content });
    expect(await domainErrorCode(send(''))).toBe('blank_message');
    expect(await domainErrorCode(send('   '))).toBe('blank_message');
    expect((await send('x')).content).toBe('x');
    expect((await send('x'.repeat(1000))).content).toHaveLength(1000);
    expect((await send('😀'.repeat(1000))).content).toBe('😀'.repeat(1000));
    expect(await domainErrorCode(send('x'.repeat(1001)))).toBe('too_long');
    expect(await domainErrorCode(send('😀'.repeat(1001)))).toBe('too_long');
    expect(await eventTypes(id)).toEqual(['ConversationStarted', 'MessageSent', 'MessageSent', 'MessageSent']);
  });

  it('gives concurrent sends from both sides gapless versions, in feed order', async () => {
    const { id, a, b } = await conversation();
    const sent = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        sendMessage(deps, { conversationId: id, senderId: i % 2 ? a : b, content: `message ${i}` }),
      ),
    );
    expect(sent.map((message) => message.version).sort((x, y) => x - y)).toEqual(oneToN(41).slice(1));
    const log = await readStream(pool, id);
    expect(log.map((event) => event.version)).toEqual(oneToN(41));
    // The sends race (an unlocked append that conflicts goes again, locked): the feed still yields the
    // stream in version order.
    expect([...log].sort(compareFeedPositions).map((event) => event.version)).toEqual(oneToN(41));
  });
});

describe('sendMessages (a batch of sends in one transaction)', () => {
  const outcome = (result: PromiseSettledResult<{ version: number; created: boolean }>) =>
    result.status === 'fulfilled'
      ? { version: result.value.version, created: result.value.created }
      : { error: result.reason instanceof DomainError ? result.reason.code : String(result.reason) };

  it('settles each send on its own, in the order given per conversation, in one transaction', async () => {
    const first = await conversation();
    const second = await conversation();
    const stranger = ++nextUser;
    const results = await sendMessages(deps, [
      { conversationId: first.id, senderId: first.a, content: 'one' },
      { conversationId: second.id, senderId: second.b, content: 'two' },
      { conversationId: first.id, senderId: stranger, content: 'not mine' },
      { conversationId: first.id, senderId: first.b, content: 'three' },
      { conversationId: second.id, senderId: second.a, content: '  ' },
      { conversationId: second.id, senderId: second.a, content: 'four' },
    ]);
    expect(results.map(outcome)).toEqual([
      { version: 2, created: true },
      { version: 2, created: true },
      { error: 'not_found' },
      { version: 3, created: true },
      { error: 'blank_message' },
      { version: 3, created: true },
    ]);
    const firstLog = await readStream(pool, first.id);
    const secondLog = await readStream(pool, second.id);
    expect(firstLog.map((event) => event.data['content'] ?? null)).toEqual([null, 'one', 'three']);
    expect(secondLog.map((event) => event.data['content'] ?? null)).toEqual([null, 'two', 'four']);
    // One commit for the four messages: they share the transaction id, so the feed yields them together.
    const appended = [...firstLog.slice(1), ...secondLog.slice(1)];
    expect(new Set(appended.map((event) => event.transactionId)).size).toBe(1);
  });

  it('answers a known client_msg_id from the log, and sends a repeat inside the batch after the first, as its retry', async () => {
    const { id, a } = await conversation();
    const other = await conversation();
    const original = await sendMessage(deps, { conversationId: id, senderId: a, content: 'first', clientMsgId: 'known' });

    const retried = await sendMessages(deps, [
      { conversationId: id, senderId: a, content: 'first', clientMsgId: 'known' },
      { conversationId: id, senderId: a, content: 'fresh', clientMsgId: 'fresh' },
    ]);
    expect(retried.map(outcome)).toEqual([
      { version: original.version, created: false },
      { version: original.version + 1, created: true },
    ]);

    const doubled = await sendMessages(deps, [
      { conversationId: id, senderId: a, content: 'twice', clientMsgId: 'twice' },
      { conversationId: id, senderId: a, content: 'twice', clientMsgId: 'twice' },
      { conversationId: other.id, senderId: a, content: 'elsewhere', clientMsgId: 'known' },
    ]);
    const [once, again, conflict] = doubled.map(outcome);
    expect([once, again].filter((result) => result !== undefined && 'created' in result && result.created)).toHaveLength(1);
    expect(once).toHaveProperty('version', original.version + 2);
    expect(again).toHaveProperty('version', original.version + 2);
    // a is not in `other`: the id is refused for being used in another conversation before anything else.
    expect(conflict).toEqual({ error: 'client_msg_id_conflict' });
    expect(await eventTypes(id)).toEqual(['ConversationStarted', 'MessageSent', 'MessageSent', 'MessageSent']);
  });
});

describe('sendMessages: where each appended message\'s predecessor is in the feed (what the fast path sends with it)', () => {
  it('names the conversation\'s event before each message: the last one before the batch, then the batch\'s own', async () => {
    const first = await conversation();
    const second = await conversation();
    await sendMessage(deps, { conversationId: first.id, senderId: first.a, content: 'alone' });
    const sent = await sendMessages(deps, [
      { conversationId: first.id, senderId: first.b, content: 'one' },
      { conversationId: second.id, senderId: second.a, content: 'two' },
      { conversationId: first.id, senderId: first.a, content: 'three' },
    ]);
    const position = (event: { transactionId: bigint; globalPosition: bigint } | undefined) =>
      event && { transactionId: event.transactionId, globalPosition: event.globalPosition };
    const [firstLog, secondLog] = await Promise.all([readStream(pool, first.id), readStream(pool, second.id)]);
    const previous = sent.map((result) => (result.status === 'fulfilled' ? result.value.appended?.previous : 'refused'));
    expect(previous).toEqual([position(firstLog[1]), position(secondLog[0]), position(firstLog[2])]);
    // and a retry appends nothing, so it has no fast-path copy at all
    const [again] = await sendMessages(deps, [{ conversationId: first.id, senderId: first.a, content: 'x', clientMsgId: 'p1' }]);
    const [retry] = await sendMessages(deps, [{ conversationId: first.id, senderId: first.a, content: 'x', clientMsgId: 'p1' }]);
    expect(again).toMatchObject({ status: 'fulfilled', value: { appended: { previous: position(firstLog[3]) } } });
    expect(retry).toMatchObject({ status: 'fulfilled', value: { appended: null } });
  });
});

describe('sendMessages with reads made before (readForSends, as the gateway makes them alongside the rate limit)', () => {
  it('appends after what was appended since the reads: the stale state is a version conflict, decided again on fresh reads', async () => {
    const { id, a, b } = await conversation();
    const reads = await readForSends(deps, [{ conversationId: id, senderId: a, content: 'late' }]);
    const between = await sendMessage(deps, { conversationId: id, senderId: b, content: 'in between' });

    const [late] = await sendMessages(deps, [{ conversationId: id, senderId: a, content: 'late' }], reads);
    expect(late).toMatchObject({ status: 'fulfilled', value: { version: between.version + 1, created: true } });
    expect((await readStream(pool, id)).map((event) => event.data['content'] ?? null)).toEqual([null, 'in between', 'late']);
  });

  it('answers a client_msg_id taken since the reads with the message that took it, appending nothing', async () => {
    const { id, a } = await conversation();
    const input = { conversationId: id, senderId: a, content: 'once', clientMsgId: 'raced' };
    const reads = await readForSends(deps, [input]);
    const winner = await sendMessage(deps, input);

    const [retry] = await sendMessages(deps, [input], reads);
    expect(retry).toMatchObject({ status: 'fulfilled', value: { id: winner.id, version: winner.version, created: false } });
    expect(await eventTypes(id)).toEqual(['ConversationStarted', 'MessageSent']);
  });

  it('finds a refused send\'s original among the ids taken before the reads and those the same batch took', async () => {
    const { id, a, b } = await conversation();
    const old = await sendMessage(deps, { conversationId: id, senderId: a, content: 'old', clientMsgId: 'old' });
    const inputs = [
      { conversationId: id, senderId: b, content: 'new', clientMsgId: 'new' },
      { conversationId: id, senderId: a, content: 'old', clientMsgId: 'old' },
      { conversationId: id, senderId: b, content: 'new', clientMsgId: 'new' },
      { conversationId: id, senderId: a, content: 'never sent', clientMsgId: 'never' },
      { conversationId: id, senderId: a, content: 'no id' },
    ];
    const reads = await readForSends(deps, inputs);
    const sent = await sendMessages(deps, inputs.slice(0, 1), reads);
    const [fresh] = sent;
    expect(fresh).toMatchObject({ status: 'fulfilled', value: { created: true } });

    const retried = retriedMessages(reads, sent, inputs.slice(1));
    expect(retried.map((message) => message && { id: message.id, created: message.created })).toEqual([
      { id: old.id, created: false },
      { id: fresh?.status === 'fulfilled' ? fresh.value.id : 'none', created: false },
      null,
      null,
    ]);
  });
});

describe('markConversationRead', () => {
  it('records a read only when the other participant has unread messages', async () => {
    const [a, b] = newUsers();
    const { conversationId } = await startConversation(deps, { initiatorId: a, otherUserId: b });
    await sendMessage(deps, { conversationId, senderId: a, content: 'one' });
    await sendMessage(deps, { conversationId, senderId: a, content: 'two' });

    expect(await markConversationRead(deps, { conversationId, readerId: a })).toEqual({ upToVersion: null, readAt: null, version: null });
    const receipt = await markConversationRead(deps, { conversationId, readerId: b });
    expect(receipt.upToVersion).toBe(3);
    expect(await markConversationRead(deps, { conversationId, readerId: b })).toEqual({ upToVersion: null, readAt: null, version: null });
    expect(await domainErrorCode(markConversationRead(deps, { conversationId, readerId: ++nextUser }))).toBe('not_found');
    expect(await eventTypes(conversationId)).toEqual(['ConversationStarted', 'MessageSent', 'MessageSent', 'MessagesRead']);
  });
});
