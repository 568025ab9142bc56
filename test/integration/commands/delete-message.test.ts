import { sql, type DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { conversationDecider } from '../../../src/commands/conversation/conversation.js';
import { sendMessage, startConversation, type CommandDeps } from '../../../src/commands/conversation/conversation-commands.js';
import { deleteMessageForEveryone } from '../../../src/commands/conversation/delete-message.js';
import { DomainError } from '../../../src/commands/domain-error.js';
import { handleCommand } from '../../../src/commands/handle-command.js';
import { readStream } from '../../../src/event-store/read-stream.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { tablesHolding, uniqueText } from '../../support/erased-text.js';
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

let nextUser = 5000;

async function conversationWithMessage(options: { clientMsgId?: string } = {}) {
  const [a, b] = [++nextUser, ++nextUser];
  const { conversationId } = await startConversation(deps, { initiatorId: a, otherUserId: b });
  const text = uniqueText('to be taken back');
  const sent = await sendMessage(deps, { conversationId, senderId: a, content: text, clientMsgId: options.clientMsgId ?? null });
  return { conversationId, a, b, text, sent };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  const error = await promise.then(
    () => null,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(DomainError);
  return (error as DomainError).code;
}

const erasureRow = z.object({ event_id: z.string(), stream_id: z.string(), version: z.number().int(), erased_by_event_id: z.string() });

async function erasuresOf(conversationId: string) {
  return pool.any(sql.type(erasureRow)`
    SELECT event_id, stream_id, version, erased_by_event_id FROM event_erasures WHERE stream_id = ${conversationId}`);
}

describe('deleteMessageForEveryone', () => {
  it('appends MessageDeleted and erases the text of the original in place, in the same transaction, leaving the rest of the event', async () => {
    const { conversationId, a, text, sent } = await conversationWithMessage({ clientMsgId: 'take-back-1' });
    const before = (await readStream(pool, conversationId)).find((event) => event.type === 'MessageSent')!;

    const deleted = await deleteMessageForEveryone(deps, { messageId: sent.id, requesterId: a, metadata: { request_id: 'r-1' } });

    const events = await readStream(pool, conversationId);
    const deleteEvent = events.at(-1)!;
    expect(deleteEvent).toMatchObject({
      type: 'MessageDeleted',
      version: sent.version + 1,
      data: { message_id: sent.id, message_version: sent.version, deleted_by: a, deleted_at: deleted.deletedAt },
      metadata: { request_id: 'r-1' },
    });
    expect(deleted).toEqual({ id: sent.id, conversationId, deletedAt: deleteEvent.data['deleted_at'], appended: true });
    const after = events.find((event) => event.version === sent.version)!;
    expect(after).toEqual({ ...before, data: { ...before.data, content: null } });
    expect(await erasuresOf(conversationId)).toEqual([
      { event_id: before.eventId, stream_id: conversationId, version: sent.version, erased_by_event_id: deleteEvent.eventId },
    ]);
    // No write-side table keeps the text: not the log, not the snapshot, not the client_msg_id reservation.
    expect(await tablesHolding(pool, text)).toEqual([]);
  });

  it('answers a repeated delete with the first one, appending nothing, also when deletes race', async () => {
    const { conversationId, a, sent } = await conversationWithMessage();
    const results = await Promise.all(Array.from({ length: 6 }, () => deleteMessageForEveryone(deps, { messageId: sent.id, requesterId: a })));
    const again = await deleteMessageForEveryone(deps, { messageId: sent.id, requesterId: a });
    expect([...results, again].filter((result) => result.appended)).toHaveLength(1);
    expect(new Set([...results, again].map(({ appended: _, ...answer }) => JSON.stringify(answer))).size).toBe(1);
    const types = (await readStream(pool, conversationId)).map((event) => event.type);
    expect(types).toEqual(['ConversationStarted', 'MessageSent', 'MessageDeleted']);
    expect(await erasuresOf(conversationId)).toHaveLength(1);
  });

  it('refuses the other participant (forbidden), and anyone else, a missing id or a malformed one (not_found), erasing nothing', async () => {
    const { conversationId, a, b, text, sent } = await conversationWithMessage();
    expect(await codeOf(deleteMessageForEveryone(deps, { messageId: sent.id, requesterId: b }))).toBe('forbidden');
    expect(await codeOf(deleteMessageForEveryone(deps, { messageId: sent.id, requesterId: ++nextUser }))).toBe('not_found');
    expect(await codeOf(deleteMessageForEveryone(deps, { messageId: deps.newId(), requesterId: a }))).toBe('not_found');
    for (const malformed of ['', 'not-a-ulid', `${sent.id}x`, sent.id.toLowerCase(), "' OR 1=1 --", 'A\u0000B']) {
      expect(await codeOf(deleteMessageForEveryone(deps, { messageId: malformed, requesterId: a }))).toBe('not_found');
    }
    expect((await readStream(pool, conversationId)).map((event) => event.type)).toEqual(['ConversationStarted', 'MessageSent']);
    expect(await tablesHolding(pool, text)).toEqual(['public.events: 1']);
    expect(await erasuresOf(conversationId)).toEqual([]);
  });

  it('answers not_found to the sender once the other participant blocked the conversation, and lets a blocker delete', async () => {
    const { conversationId, a, b, sent } = await conversationWithMessage();
    const fromB = await sendMessage(deps, { conversationId, senderId: b, content: uniqueText('from the blocker') });
    await handleCommand(pool, conversationDecider, conversationId, { type: 'BlockConversation', userId: b, now: new Date() });
    // The message missing and the conversation hidden get the same answer.
    const refused = await deleteMessageForEveryone(deps, { messageId: sent.id, requesterId: a }).catch((error: unknown) => error);
    const missing = await deleteMessageForEveryone(deps, { messageId: deps.newId(), requesterId: a }).catch((error: unknown) => error);
    expect(refused).toEqual(missing);
    expect(refused).toMatchObject({ code: 'not_found' });
    expect(await deleteMessageForEveryone(deps, { messageId: fromB.id, requesterId: b })).toMatchObject({ id: fromB.id });
  });

  it('answers a retry of a deleted message (its client_msg_id) with its tombstone: text null, deleted_at of the delete', async () => {
    const { conversationId, a, text, sent } = await conversationWithMessage({ clientMsgId: 'take-back-retry' });
    expect(sent.deletedAt).toBeNull();
    const deleted = await deleteMessageForEveryone(deps, { messageId: sent.id, requesterId: a });
    const retry = await sendMessage(deps, { conversationId, senderId: a, content: text, clientMsgId: 'take-back-retry' });
    expect(retry).toEqual({ ...sent, content: null, deletedAt: deleted.deletedAt, created: false, appended: null });
    expect(await tablesHolding(pool, text)).toEqual([]);
  });

  it('writes neither the delete nor the erasure when the erasure fails', async () => {
    const { conversationId, a, text, sent } = await conversationWithMessage();
    await pool.query(sql.unsafe`
      CREATE FUNCTION refuse_erasure() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN RAISE EXCEPTION 'erasure refused by the test'; END $$`);
    await pool.query(sql.unsafe`
      CREATE TRIGGER refuse_erasure BEFORE INSERT ON event_erasures FOR EACH ROW
      WHEN (NEW.stream_id = ${sql.literalValue(conversationId)}) EXECUTE FUNCTION refuse_erasure()`);
    try {
      await expect(deleteMessageForEveryone(deps, { messageId: sent.id, requesterId: a })).rejects.toThrow(/erasure refused by the test/);
    } finally {
      await pool.query(sql.unsafe`DROP TRIGGER refuse_erasure ON event_erasures`);
      await pool.query(sql.unsafe`DROP FUNCTION refuse_erasure()`);
    }
    expect((await readStream(pool, conversationId)).map((event) => event.type)).toEqual(['ConversationStarted', 'MessageSent']);
    expect(await tablesHolding(pool, text)).toEqual(['public.events: 1']);
    // And the delete goes through once the erasure can.
    await deleteMessageForEveryone(deps, { messageId: sent.id, requesterId: a });
    expect(await tablesHolding(pool, text)).toEqual([]);
  });
});
