import { sql, type DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { conversationDecider, type ConversationCommand } from '../../../src/commands/conversation/conversation.js';
import { handleCommand } from '../../../src/commands/handle-command.js';
import {
  markConversationRead,
  sendMessage,
  startConversation,
  type CommandDeps,
} from '../../../src/commands/conversation/conversation-commands.js';
import { FEED_START, type FeedPosition, type RecordedEvent } from '../../../src/event-store/recorded-event.js';
import { readCatchUp, type CatchUp } from '../../../src/delivery/catch-up.js';
import { decodeCursor } from '../../../src/delivery/cursor.js';
import { type EventFrame } from '../../../src/delivery/event-frames.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { sleep } from '../../../src/shared/sleep.js';
import { appendToStream, holdTransaction, readFeedEventually } from '../../support/event-log.js';
import { expectedFrames, unblockedFrameFor } from '../../support/delivered-frames.js';
import { readStream } from '../../../src/event-store/read-stream.js';
import { createTestDatabase } from '../../support/infra.js';

let pool: DatabasePool;
let deps: CommandDeps;
const [alice, bob, carol, dave, erin] = [11, 22, 33, 44, 55];
let aliceBob: string;
let carolAlice: string;
let bobCarol: string;
/** A long one, so that finding where the cursor falls takes several steps. */
let aliceDave: string;
/** The whole log after setup, in feed order. */
let log: RecordedEvent[];

beforeAll(async () => {
  pool = await createDatabasePool({ url: await createTestDatabase(), maximumPoolSize: 6 });
  deps = { pool, clock: () => new Date(), newId: monotonicFactory() };
  aliceBob = (await startConversation(deps, { initiatorId: alice, otherUserId: bob })).conversationId;
  carolAlice = (await startConversation(deps, { initiatorId: carol, otherUserId: alice })).conversationId;
  bobCarol = (await startConversation(deps, { initiatorId: bob, otherUserId: carol })).conversationId;
  aliceDave = (await startConversation(deps, { initiatorId: dave, otherUserId: alice })).conversationId;
  for (let i = 0; i < 60; i++) {
    if (i < 4) {
      await sendMessage(deps, { conversationId: aliceBob, senderId: alice, content: `ab-a${i}` });
      await sendMessage(deps, { conversationId: bobCarol, senderId: carol, content: `bc-c${i}` });
      await sendMessage(deps, { conversationId: carolAlice, senderId: carol, content: `ca-c${i}`, clientMsgId: `ca-${i}` });
      await sendMessage(deps, { conversationId: aliceBob, senderId: bob, content: `ab-b${i}` });
    }
    await sendMessage(deps, { conversationId: aliceDave, senderId: i % 3 ? alice : dave, content: `ad-${i}` });
  }
  await markConversationRead(deps, { conversationId: aliceBob, readerId: bob });
  await markConversationRead(deps, { conversationId: carolAlice, readerId: alice });
  await markConversationRead(deps, { conversationId: aliceDave, readerId: dave });
  // 4 starts + 76 messages + 3 reads.
  log = await readFeedEventually(pool, FEED_START, 83);
  expect(log).toHaveLength(83);
});
afterAll(async () => {
  await pool.end();
});

function framesFor(userId: number, userConversations: readonly string[], events: readonly RecordedEvent[]): EventFrame[] {
  return events.filter((event) => userConversations.includes(event.streamId)).map(unblockedFrameFor(userId));
}

/**
 * The catch-up once it holds at least `count` frames. The horizon is cluster-wide: write transactions of
 * other test files running at the same moment can hold it back for a short while.
 */
async function catchUpEventually(
  userId: number,
  after: FeedPosition,
  limit: number,
  count: number,
): Promise<CatchUp | 'resync_required'> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const result = await readCatchUp(pool, userId, after, { limit });
    if (result === 'resync_required' || result.frames.length >= count || Date.now() > deadline) return result;
    await sleep(20);
  }
}

describe('the catch-up read', () => {
  it("returns every event of the caller's conversations, and only those, as the live frames, in feed order", async () => {
    const expected = framesFor(alice, [aliceBob, carolAlice, aliceDave], log);
    expect(expected).toHaveLength(78); // 3 starts, 72 messages, 3 reads: bob-carol's are not hers
    expect(await catchUpEventually(alice, FEED_START, 500, expected.length)).toEqual({ frames: expected });
    // Within a conversation, feed order is seq order, with no gap.
    const seqs = expected.filter((frame) => frame.conversation_id === aliceBob).map((frame) => frame.seq);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, index) => index + 1));

    expect(await catchUpEventually(carol, FEED_START, 500, 0)).toEqual({ frames: framesFor(carol, [carolAlice, bobCarol], log) });
    expect(await readCatchUp(pool, erin, FEED_START, { limit: 500 })).toEqual({ frames: [] });
  });

  it('returns exactly the events after the cursor, from any cursor, including one of a foreign conversation', async () => {
    const mine = [aliceBob, carolAlice, aliceDave];
    for (const [index, event] of log.entries()) {
      const after = { transactionId: event.transactionId, globalPosition: event.globalPosition };
      const expected = framesFor(alice, mine, log.slice(index + 1));
      expect(await readCatchUp(pool, alice, after, { limit: 500 })).toEqual({ frames: expected });
    }
    // A client resumes from the cursor of the last frame it got.
    const frames = framesFor(alice, mine, log);
    const cursor = frames[9]!.cursor;
    expect(await readCatchUp(pool, alice, decodeCursor(cursor)!, { limit: 500 })).toEqual({ frames: frames.slice(10) });
    // Dave's view of the same cursors: his one conversation only.
    for (const [index, event] of log.entries()) {
      const after = { transactionId: event.transactionId, globalPosition: event.globalPosition };
      expect(await readCatchUp(pool, dave, after, { limit: 500 })).toEqual({ frames: framesFor(dave, [aliceDave], log.slice(index + 1)) });
    }
  });

  it('answers resync_required past the limit, whether one conversation or several exceed it', async () => {
    const mine = [aliceBob, carolAlice, aliceDave];
    const all = framesFor(alice, mine, log);
    expect(await readCatchUp(pool, alice, FEED_START, { limit: all.length })).toEqual({ frames: all });
    expect(await readCatchUp(pool, alice, FEED_START, { limit: all.length - 1 })).toBe('resync_required');

    const counts = mine.map((id) => all.filter((frame) => frame.conversation_id === id).length).sort((a, b) => a - b);
    expect(counts).toEqual([6, 10, 62]);
    // aliceDave alone is over a limit of 10.
    expect(await readCatchUp(pool, alice, FEED_START, { limit: 10 })).toBe('resync_required');
    // Each within a limit of 62, together over it.
    expect(await readCatchUp(pool, alice, FEED_START, { limit: 62 })).toBe('resync_required');

    const [beforeLastTwo] = log.filter((event) => mine.includes(event.streamId)).slice(-3);
    const after = { transactionId: beforeLastTwo!.transactionId, globalPosition: beforeLastTwo!.globalPosition };
    expect(await readCatchUp(pool, alice, after, { limit: 2 })).toEqual({ frames: all.slice(-2) });
    expect(await readCatchUp(pool, alice, after, { limit: 1 })).toBe('resync_required');
    expect(await readCatchUp(pool, alice, after, { limit: 0 })).toBe('resync_required');
  });

  it('holds back an event of a still-open transaction, and what committed after it began, until it commits', async () => {
    const lastFrame = framesFor(alice, [aliceBob, carolAlice, aliceDave], log).at(-1)!;
    const after = decodeCursor(lastFrame.cursor)!;
    const version = await pool.oneFirst(
      sql.type(z.object({ version: z.number() }))`SELECT version FROM event_streams WHERE stream_id = ${aliceBob}`,
    );
    const held = await holdTransaction(pool, async (transaction) => {
      await appendToStream(transaction, {
        streamId: aliceBob,
        streamType: 'conversation',
        expectedVersion: version,
        events: [
          {
            type: 'MessageSent',
            data: { message_id: deps.newId(), sender_id: bob, content: 'held', client_msg_id: null, sent_at: new Date().toISOString() },
          },
        ],
      });
    });
    try {
      // Commit while the held transaction is open: their transaction ids are above the held one's.
      const later = [];
      for (let i = 1; i <= 3; i++) {
        later.push(await sendMessage(deps, { conversationId: carolAlice, senderId: carol, content: `after the held one ${i}` }));
      }
      // They are committed and in the log: the horizon, not their visibility, is what holds them back.
      const committed = await pool.oneFirst(
        sql.type(z.object({ version: z.number() }))`SELECT version FROM event_streams WHERE stream_id = ${carolAlice}`,
      );
      expect(committed).toBe(later.at(-1)!.version);
      expect(await readCatchUp(pool, alice, after, { limit: 500 })).toEqual({ frames: [] });
      expect(await readCatchUp(pool, bob, after, { limit: 500 })).toEqual({ frames: [] });

      await held.commit();
      const result = await catchUpEventually(alice, after, 500, 4);
      if (result === 'resync_required') throw new Error('unexpected resync_required');
      expect(result.frames.map((frame) => [frame.conversation_id, frame.seq, frame.type])).toEqual([
        [aliceBob, version + 1, 'new_message'],
        ...later.map((message) => [carolAlice, message.version, 'new_message']),
      ]);
      expect(result.frames.map((frame) => frame.type === 'new_message' && frame.data.message)).toEqual([
        'held',
        'after the held one 1',
        'after the held one 2',
        'after the held one 3',
      ]);
      // Bob sees the held one only: the other is not his conversation.
      const forBob = await catchUpEventually(bob, after, 500, 1);
      expect(forBob !== 'resync_required' && forBob.frames.map((frame) => frame.seq)).toEqual([version + 1]);
    } finally {
      await held.rollback().catch(() => undefined);
    }
  });

  it("gives the blocked user nothing of a blocked conversation, from any cursor, and the blocker everything", async () => {
    const [frank, gina] = [66, 77];
    const id = (await startConversation(deps, { initiatorId: gina, otherUserId: frank })).conversationId;
    const run = (command: ConversationCommand) => handleCommand(pool, conversationDecider, id, command);
    const first = await sendMessage(deps, { conversationId: id, senderId: frank, content: 'f1' }); // 2
    await sendMessage(deps, { conversationId: id, senderId: gina, content: 'g1' }); // 3
    await run({ type: 'BlockConversation', userId: frank, now: new Date() }); // 4
    await markConversationRead(deps, { conversationId: id, readerId: frank }); // 5
    await run({ type: 'DeleteMessage', requesterId: frank, message: { id: first.id, version: first.version, senderId: frank }, now: new Date() }); // 6
    await run({ type: 'UnblockConversation', userId: frank, now: new Date() }); // 7
    await sendMessage(deps, { conversationId: id, senderId: gina, content: 'g2' }); // 8
    const events = await readStream(pool, id);
    const conversations = new Map([[id, [frank, gina]]]);
    expect(expectedFrames(events, conversations, gina).map((frame) => [frame.seq, frame.type])).toEqual([
      [1, 'conversation_created'],
      [2, 'new_message'],
      [3, 'new_message'],
      [4, 'conversation_removed'],
      [7, 'conversation_restored'],
      [8, 'new_message'],
    ]);
    const whole = await catchUpEventually(gina, decodeCursor(framesFor(alice, [aliceBob], log).at(-1)!.cursor)!, 500, 6);
    expect(whole !== 'resync_required' && whole.frames.filter((frame) => frame.conversation_id === id)).toEqual(
      expectedFrames(events, conversations, gina),
    );
    // From a cursor before, at, inside and after the blocked span: the block in force there is read, not assumed.
    for (const version of [3, 4, 5, 6, 7]) {
      const after = events[version - 1]!;
      for (const user of [frank, gina]) {
        const result = await readCatchUp(pool, user, after, { limit: 500 });
        const expected = expectedFrames(events, conversations, user).filter((frame) => frame.seq > version);
        expect({ user, version, result }).toEqual({ user, version, result: { frames: expected } });
      }
    }
  });
});
