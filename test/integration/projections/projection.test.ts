import { pino } from 'pino';
import type { DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  markConversationRead,
  sendMessage,
  startConversation,
  type CommandDeps,
} from '../../../src/commands/conversation/conversation-commands.js';
import type { RecordedEvent } from '../../../src/event-store/recorded-event.js';
import { getConversation, listConversations, listMessages } from '../../../src/projections/conversation/queries.js';
import { projectEvents } from '../../../src/projections/projector.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { readWholeLog } from '../../support/event-log.js';
import { createTestDatabase } from '../../support/infra.js';
import type { ReadTables } from '../../../src/projections/conversation/apply-conversation-events.js';
import { createReadTables, foldReadModel, readModel } from '../../support/read-model.js';

let pool: DatabasePool;
let deps: CommandDeps;
let log: RecordedEvent[];
const logger = pino({ level: 'silent' });
const [alice, bob, carol] = [11, 22, 33];
let withBob: string;
let withCarol: string;

beforeAll(async () => {
  pool = await createDatabasePool({ url: await createTestDatabase(), maximumPoolSize: 6 });
  // A clock that moves at least 1 ms per command: the activity order under test must not hinge on ties.
  let now = 0;
  deps = { pool, clock: () => new Date((now = Math.max(Date.now(), now + 1))), newId: monotonicFactory() };
  withBob = (await startConversation(deps, { initiatorId: alice, otherUserId: bob })).conversationId;
  withCarol = (await startConversation(deps, { initiatorId: carol, otherUserId: alice })).conversationId;
  const send = (conversationId: string, senderId: number, content: string) =>
    sendMessage(deps, { conversationId, senderId, content, clientMsgId: `${senderId}-${content}` });
  for (let i = 0; i < 5; i++) {
    await send(withBob, alice, `a${i}`);
    await send(withBob, bob, `b${i}`);
    if (i === 2) await markConversationRead(deps, { conversationId: withBob, readerId: bob });
  }
  await send(withCarol, carol, 'hello alice');
  await send(withCarol, carol, 'are you there?');
  await markConversationRead(deps, { conversationId: withBob, readerId: alice });
  await send(withBob, bob, 'last word');
  log = await readWholeLog(pool);
});
afterAll(async () => {
  await pool.end();
});

/** Applies `events` in transactions of `batchSize` events, as the projector does with what JetStream delivers. */
async function project(events: readonly RecordedEvent[], tables: ReadTables, batchSize = 1) {
  for (let start = 0; start < events.length; start += batchSize) {
    await projectEvents({ pool, tables, logger }, events.slice(start, start + batchSize));
  }
}

describe('the conversation projection', () => {
  it('gives the tables a fold of the log gives, applied once, applied twice, and redelivered out of order', async () => {
    const expected = foldReadModel(log);
    const once = await createReadTables(pool);
    await project(log, once);
    expect(await readModel(pool, once)).toEqual(expected);

    const twice = await createReadTables(pool);
    await project(log.flatMap((event) => [event, event]), twice);
    expect(await readModel(pool, twice)).toEqual(expected);

    const shuffled = await createReadTables(pool);
    // A deterministic shuffle: later versions arrive first (gaps, filled from the log), then everything again.
    const reordered = [...log].reverse().filter((_, index) => index % 3 === 0);
    await project([...reordered, ...log.filter((_, index) => index % 2 === 1), ...log], shuffled);
    expect(await readModel(pool, shuffled)).toEqual(expected);
  });

  it('gives the same tables when events arrive in batches, whole, repeated, or reversed with gaps', async () => {
    const expected = foldReadModel(log);
    for (const batchSize of [4, 7, log.length]) {
      const batched = await createReadTables(pool);
      await project(log, batched, batchSize);
      expect(await readModel(pool, batched)).toEqual(expected);
    }
    // Repeats inside one batch and across batches, read receipts landing in a later batch than their messages.
    const repeated = await createReadTables(pool);
    await project([...log.slice(0, 9), ...log.slice(0, 9), ...log.slice(5), ...log], repeated, 6);
    expect(await readModel(pool, repeated)).toEqual(expected);
    // A first batch of the newest events only: every conversation in it has a gap that only the log can fill.
    const ahead = await createReadTables(pool);
    await project(log.slice(-3).reverse(), ahead, 3);
    await project(log, ahead, 5);
    expect(await readModel(pool, ahead)).toEqual(expected);
  });

  it('keeps unread counts, the last message and read_at in step with sends and reads from both sides', async () => {
    const tables = await createReadTables(pool);
    await project(log, tables);
    const forAlice = await listConversations(pool, alice, { limit: 100 }, tables);
    if (forAlice === 'bad_cursor') throw new Error('no cursor was given');
    expect(forAlice.map((conversation) => conversation.id)).toEqual([withBob, withCarol]);
    // A page at a time, keyed on the last conversation of the previous page: the same order, nothing twice.
    const listPage = async (before?: string) => {
      const answer = await listConversations(pool, alice, before === undefined ? { limit: 1 } : { limit: 1, before }, tables);
      return answer === 'bad_cursor' ? answer : answer.map((conversation) => conversation.id);
    };
    expect(await listPage()).toEqual([withBob]);
    expect(await listPage(withBob)).toEqual([withCarol]);
    expect(await listPage(withCarol)).toEqual([]);
    expect(await listPage('01ARZ3NDEKTSV4RRFFQ69G5FAV')).toBe('bad_cursor');
    expect(forAlice[0]).toMatchObject({ last_message_content: 'last word', unread_count: 1 });
    expect(forAlice[1]).toMatchObject({ last_message_content: 'are you there?', unread_count: 2 });
    expect(await getConversation(pool, bob, withBob, tables)).toMatchObject({ unread_count: 2 }); // a3, a4
    expect(await getConversation(pool, carol, withBob, tables)).toBeNull();

    const page = await listMessages(pool, bob, withBob, { limit: 50, offset: 0 }, tables);
    if (!Array.isArray(page)) throw new Error(`expected messages, got ${page}`);
    expect(page.map((message) => message.msg)).toEqual([
      'last word', 'b4', 'a4', 'b3', 'a3', 'b2', 'a2', 'b1', 'a1', 'b0', 'a0',
    ]);
    // Bob read after a2; Alice read after b4; nothing read 'last word' yet.
    const readAt = new Map(page.map((message) => [message.msg, message.read_at]));
    for (const msg of ['a0', 'a1', 'a2', 'b0', 'b1', 'b2', 'b3', 'b4']) expect(readAt.get(msg)).not.toBeNull();
    for (const msg of ['a3', 'a4', 'last word']) expect(readAt.get(msg)).toBeNull();
  });

  it('pages with offset and with a before cursor alike, and refuses a stranger and a foreign cursor', async () => {
    const tables = await createReadTables(pool);
    await project(log, tables);
    const all = await listMessages(pool, alice, withBob, { limit: 1000, offset: 0 }, tables);
    if (!Array.isArray(all)) throw new Error('expected messages');
    const byOffset = await listMessages(pool, alice, withBob, { limit: 3, offset: 4 }, tables);
    const byCursor = await listMessages(pool, alice, withBob, { limit: 3, before: all[3]!.id }, tables);
    expect(byCursor).toEqual(byOffset);
    expect(await listMessages(pool, carol, withBob, { limit: 3, offset: 0 }, tables)).toBe('not_found');
    const carolsMessage = await listMessages(pool, alice, withCarol, { limit: 1, offset: 0 }, tables);
    if (!Array.isArray(carolsMessage)) throw new Error('expected messages');
    expect(await listMessages(pool, alice, withBob, { limit: 3, before: carolsMessage[0]!.id }, tables)).toBe(
      'bad_cursor',
    );
  });
});
