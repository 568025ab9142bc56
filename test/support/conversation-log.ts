import type { DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import {
  decide,
  evolve,
  initialState,
  type ConversationCommand,
  type ConversationState,
} from '../../src/commands/conversation/conversation.js';
import { CONVERSATION_STREAM_TYPE, type ConversationEvent } from '../../src/commands/conversation/events.js';
import { appendToStreams } from '../../src/event-store/append-to-stream.js';

export type ScriptOptions = {
  readonly conversationId: string;
  readonly users: readonly [number, number];
  /** Events in the stream, ConversationStarted included. */
  readonly events: number;
  /** Every n-th command is a "mark read" by whoever has unread messages; 0 never reads. */
  readonly readEvery: number;
  readonly startAt: number;
  readonly newId: () => string;
};

/**
 * A conversation's events as the real commands decide them (the pure decider folded in memory): the two
 * users take turns sending, with read receipts now and then. Fast enough for a million events.
 */
export function conversationScript(options: ScriptOptions): ConversationEvent[] {
  const [first, second] = options.users;
  const events: ConversationEvent[] = [];
  let state: ConversationState = initialState();
  const run = (command: ConversationCommand) => {
    for (const event of decide(command, state)) {
      state = evolve(state, event);
      events.push(event);
    }
  };
  const at = (index: number) => new Date(options.startAt + index);
  run({ type: 'StartConversation', conversationId: options.conversationId, initiatorId: first, otherUserId: second, now: at(0) });
  for (let index = 1; events.length < options.events; index++) {
    const actor = index % 2 === 0 ? first : second;
    if (options.readEvery > 0 && index % options.readEvery === 0) {
      const before = events.length;
      run({ type: 'MarkConversationRead', readerId: actor, now: at(index) });
      if (events.length > before) continue;
    }
    run({
      type: 'SendMessage',
      senderId: actor,
      messageId: options.newId(),
      content: `message ${index} from ${actor}`,
      clientMsgId: null,
      now: at(index),
    });
  }
  return events;
}

/**
 * Writes `conversations` conversations of `eventsPerConversation` events each into the log with the real
 * append statement (versions, transaction ids, the pair reservation), `chunk` events per statement,
 * `concurrency` conversations at a time. User ids start at `firstUserId`, two per conversation.
 * @returns the conversation ids and their users, in creation order.
 */
export async function seedConversationLog(
  pool: DatabasePool,
  options: {
    readonly conversations: number;
    readonly eventsPerConversation: number;
    readonly firstUserId: number;
    readonly readEvery?: number;
    readonly chunk?: number;
    readonly concurrency?: number;
  },
): Promise<{ readonly id: string; readonly users: readonly [number, number] }[]> {
  const newId = monotonicFactory();
  const chunk = options.chunk ?? 1_000;
  const seeded = Array.from({ length: options.conversations }, (_, index) => ({
    id: newId(),
    users: [options.firstUserId + 2 * index, options.firstUserId + 2 * index + 1] as const,
  }));
  let next = 0;
  const worker = async () => {
    for (let index = next++; index < seeded.length; index = next++) {
      const { id, users } = seeded[index]!;
      const events = conversationScript({
        conversationId: id,
        users,
        events: options.eventsPerConversation,
        readEvery: options.readEvery ?? 10,
        startAt: Date.now(),
        newId,
      });
      for (let start = 0; start < events.length; start += chunk) {
        const pair = { table: 'conversation_pairs', columns: ['user_low', 'user_high', 'conversation_id'], types: ['int8', 'int8', 'text'] };
        await appendToStreams(
          pool,
          [{ streamId: id, streamType: CONVERSATION_STREAM_TYPE, expectedVersion: start, events: events.slice(start, start + chunk) }],
          start === 0 ? { reservations: [{ ...pair, rows: [[users[0], users[1], id]] }] } : {},
        );
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency ?? 4 }, worker));
  return seeded;
}
