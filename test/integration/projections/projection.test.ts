import { pino } from 'pino';
import type { DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  blockConversation,
  markConversationRead,
  sendMessage,
  startConversation,
  unblockConversation,
  type CommandDeps,
} from '../../../src/commands/conversation/conversation-commands.js';
import {
  conversationDecider,
  decide,
  evolve,
  initialState,
  type ConversationCommand,
  type ConversationState,
} from '../../../src/commands/conversation/conversation.js';
import { CONVERSATION_STREAM_TYPE, type ConversationEvent } from '../../../src/commands/conversation/events.js';
import { DomainError } from '../../../src/commands/domain-error.js';
import { handleCommand } from '../../../src/commands/handle-command.js';
import { appendToStreams } from '../../../src/event-store/append-to-stream.js';
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

describe('blocks, unblocks and deletes', () => {
  const [dave, erin] = [44, 55];

  it('hides a blocked conversation from the blocked user only, and shows a deleted message as a tombstone', async () => {
    const { conversationId } = await startConversation(deps, { initiatorId: dave, otherUserId: erin });
    const first = await sendMessage(deps, { conversationId, senderId: erin, content: 'first' });
    const second = await sendMessage(deps, { conversationId, senderId: erin, content: 'second, then deleted' });
    const deletion = await handleCommand(pool, conversationDecider, conversationId, {
      type: 'DeleteMessage',
      requesterId: erin,
      message: { id: second.id, version: second.version, senderId: erin },
      now: deps.clock(),
    });
    const blocked = await blockConversation(deps, { conversationId, userId: dave });
    const streamOf = async () => (await readWholeLog(pool)).filter((event) => event.streamId === conversationId);
    const tables = await createReadTables(pool);
    await project(await streamOf(), tables);

    const blockEvent = (await streamOf()).find((event) => event.version === blocked.version)!;
    expect(await getConversation(pool, dave, conversationId, tables)).toMatchObject({
      blocked_by: dave,
      // The last message was deleted: its text is not shown, its time stays.
      last_message_content: null,
      last_message_at: second.sentAt,
      // The tombstone counts until read, like any message.
      unread_count: 2,
      updated_at: blockEvent.data['blocked_at'],
    });
    const page = await listMessages(pool, dave, conversationId, { limit: 10, offset: 0 }, tables);
    expect(page).toMatchObject([
      { id: second.id, msg: null, deleted_at: deletion.recorded[0]!.data['deleted_at'], seq: second.version },
      { id: first.id, msg: 'first', deleted_at: null, seq: first.version },
    ]);

    // For Erin the conversation does not exist, whatever way she asks.
    expect(await getConversation(pool, erin, conversationId, tables)).toBeNull();
    expect(await listMessages(pool, erin, conversationId, { limit: 10, offset: 0 }, tables)).toBe('not_found');
    expect(await listConversations(pool, erin, { limit: 100 }, tables)).toEqual([]);
    expect(await listConversations(pool, erin, { limit: 1, before: conversationId }, tables)).toBe('bad_cursor');

    await unblockConversation(deps, { conversationId, userId: dave });
    await project(await streamOf(), tables);
    expect(await getConversation(pool, erin, conversationId, tables)).toMatchObject({ blocked_by: null, unread_count: 0 });
    expect(await listConversations(pool, erin, { limit: 100 }, tables)).toMatchObject([{ id: conversationId, blocked_by: null }]);
    expect(await getConversation(pool, dave, conversationId, tables)).toMatchObject({ blocked_by: null });
  });

  /** mulberry32: a small seeded generator, so a failing run can be repeated from its seed. */
  function randomFrom(seed: number): () => number {
    let state = seed >>> 0;
    return () => {
      state = (state + 0x6d2b79f5) >>> 0;
      let t = state;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
    };
  }

  /**
   * A conversation's events as the real decider decides them from random commands of both users: sends, reads,
   * blocks and unblocks by either, deletes by either (the decider refuses what the rules refuse).
   */
  function randomConversation(random: () => number, conversationId: string, users: readonly [number, number], commands: number) {
    const events: ConversationEvent[] = [];
    const messages: { id: string; version: number; senderId: number }[] = [];
    let state: ConversationState = initialState();
    let clock = Date.parse('2025-01-01T00:00:00.000Z') + Math.floor(random() * 1e9);
    const run = (command: ConversationCommand) => {
      try {
        for (const event of decide(command, state)) {
          state = evolve(state, event);
          events.push(event);
          if (event.type === 'MessageSent') messages.push({ id: event.data.message_id, version: events.length, senderId: event.data.sender_id });
        }
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
      }
    };
    const now = () => new Date((clock += 1 + Math.floor(random() * 1_000)));
    run({ type: 'StartConversation', conversationId, initiatorId: users[0], otherUserId: users[1], now: now() });
    for (let index = 0; index < commands; index++) {
      const actor = users[Math.floor(random() * 2)]!;
      const roll = random();
      if (roll < 0.5) {
        run({ type: 'SendMessage', senderId: actor, messageId: newId(), content: `text ${index} of ${actor}`, clientMsgId: null, now: now() });
      } else if (roll < 0.65) {
        run({ type: 'MarkConversationRead', readerId: actor, now: now() });
      } else if (roll < 0.75) {
        run({ type: 'BlockConversation', userId: actor, now: now() });
      } else if (roll < 0.85) {
        run({ type: 'UnblockConversation', userId: actor, now: now() });
      } else {
        // Often the newest message (what blanks the last message), else any.
        const message = random() < 0.5 ? messages.at(-1) : messages[Math.floor(random() * messages.length)];
        run({ type: 'DeleteMessage', requesterId: actor, message: message ?? null, now: now() });
      }
    }
    return events;
  }

  const newId = monotonicFactory();

  /** Writes random conversations into the log and returns their events as stored. */
  async function randomLog(seed: number): Promise<RecordedEvent[]> {
    const random = randomFrom(seed);
    const ids: string[] = [];
    for (let index = 0; index < 6; index++) {
      const id = newId();
      const users = [1_000 + seed * 100 + 2 * index, 1_001 + seed * 100 + 2 * index] as const;
      const events = randomConversation(random, id, users, 30 + Math.floor(random() * 40));
      const pair = { table: 'conversation_pairs', columns: ['user_low', 'user_high', 'conversation_id'], types: ['int8', 'int8', 'text'] };
      await appendToStreams(pool, [{ streamId: id, streamType: CONVERSATION_STREAM_TYPE, expectedVersion: 0, events }], {
        reservations: [{ ...pair, rows: [[users[0], users[1], id]] }],
      });
      ids.push(id);
    }
    return (await readWholeLog(pool)).filter((event) => ids.includes(event.streamId));
  }

  /** The log interleaved across conversations, then cut into random batches with repeats and late arrivals. */
  function randomDeliveries(random: () => number, events: readonly RecordedEvent[]): RecordedEvent[][] {
    const deliveries: RecordedEvent[] = [];
    for (const event of events) {
      deliveries.push(event);
      if (random() < 0.1) deliveries.push(events[Math.floor(random() * events.length)]!);
    }
    // A few newer events first: their gaps are filled from the log.
    const early = deliveries.filter(() => random() < 0.05);
    const all = [...early, ...deliveries];
    const batches: RecordedEvent[][] = [];
    for (let start = 0; start < all.length; ) {
      const size = 1 + Math.floor(random() * 12);
      batches.push(all.slice(start, start + size));
      start += size;
    }
    return batches;
  }

  const erased = (events: readonly RecordedEvent[]): RecordedEvent[] => {
    const deleted = new Set(events.filter((event) => event.type === 'MessageDeleted').map((event) => event.data['message_id']));
    return events.map((event) =>
      event.type === 'MessageSent' && deleted.has(event.data['message_id']) ? { ...event, data: { ...event.data, content: null } } : event,
    );
  };

  it.each([1, 2, 3, 4, 5])('projects random logs (seed %i) to the fold of the log, batched, repeated, with gaps', async (seed) => {
    const events = await randomLog(seed);
    const types = new Set(events.map((event) => event.type));
    for (const type of ['ConversationBlocked', 'ConversationUnblocked', 'MessageDeleted']) expect(types).toContain(type);
    const expected = foldReadModel(events);

    const tables = await createReadTables(pool);
    for (const batch of randomDeliveries(randomFrom(seed * 7), events)) await projectEvents({ pool, tables, logger }, batch);
    expect(await readModel(pool, tables)).toEqual(expected);

    // The log as the erasure leaves it (each deleted message's text null in its MessageSent) projects to the same tables.
    expect(foldReadModel(erased(events))).toEqual(expected);
    const fromErased = await createReadTables(pool);
    await project(erased(events), fromErased, 5);
    expect(await readModel(pool, fromErased)).toEqual(expected);
  });
});
