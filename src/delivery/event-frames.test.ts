import { describe, expect, it } from 'vitest';
import { decodeCursor } from './cursor.js';
import {
  eventFrame,
  eventFrameSchema,
  recipientsOfConversationData,
  recordedEventFrame,
  UnframeableEventError,
  type EventFrame,
  type FrameableEvent,
  type FrameConversation,
  type FrameRecipient,
} from './event-frames.js';

const at = '2026-11-24T10:00:00.123Z';
const later = '2026-11-24T11:30:00.456Z';
const [low, high] = [7, 42];
const conversationId = '01JCONVERSATION';

function event(type: string, data: Record<string, unknown>, version = 2): FrameableEvent {
  return { stream_id: conversationId, version, type, data, position: '741:12' };
}

const cursor = 'NzQxOjEy'; // base64url of "741:12"
const base = (seq: number) => ({ conversation_id: conversationId, seq, cursor });

/** Recipients: nobody blocked, or `blocker` blocked the conversation (in force at the event). */
const open = (userId: number, conversation?: FrameConversation): FrameRecipient => ({ userId, blockedBy: null, conversation: conversation ?? null });
const blockedBy = (blocker: number, userId: number, conversation?: FrameConversation): FrameRecipient => ({
  userId,
  blockedBy: blocker,
  conversation: conversation ?? null,
});

/** given the recipient (and the block in force), when the event is framed, then this frame or none. */
function given(recipient: FrameRecipient) {
  return {
    when(source: FrameableEvent) {
      const frame = eventFrame(source, recipient);
      return {
        then(expected: EventFrame) {
          expect(frame).toEqual(expected);
          // What the gateway parses at the NATS boundary is the frame itself.
          expect(eventFrameSchema.parse(JSON.parse(JSON.stringify(frame)))).toEqual(frame);
        },
        thenNothing() {
          expect(frame).toBeNull();
        },
      };
    },
  };
}

const sent = (content: string | null, version = 5) =>
  event('MessageSent', { message_id: '01JMESSAGE', sender_id: high, content, client_msg_id: 'c-1', sent_at: at }, version);
const read = (version = 6) => event('MessagesRead', { reader_id: low, up_to_version: 4, read_at: at }, version);
const deleted = (version = 8) =>
  event('MessageDeleted', { message_id: '01JMESSAGE', message_version: 5, deleted_by: high, deleted_at: later }, version);
const blocked = (by: number, user: number, version = 7) =>
  event('ConversationBlocked', { blocked_by: by, blocked_user_id: user, blocked_at: later }, version);
const unblocked = (by: number, user: number, version = 9) =>
  event('ConversationUnblocked', { unblocked_by: by, unblocked_user_id: user, unblocked_at: later }, version);

/** The read tables' row as one participant sees it (queries.ts), without `blocked_by`. */
const row = (unread: number): FrameConversation => ({
  id: conversationId,
  user1_id: low,
  user2_id: high,
  last_message_content: 'last words',
  last_message_at: '2026-11-24T10:05:00.000Z',
  created_at: '2026-11-20T08:00:00.000Z',
  updated_at: '2026-11-24T10:05:00.000Z',
  unread_count: unread,
});

const newMessage = (message: string | null): EventFrame => ({
  type: 'new_message',
  ...base(5),
  timestamp: at,
  data: { id: '01JMESSAGE', sender_id: high, message, timestamp: at, read_at: null, client_msg_id: 'c-1' },
});

describe('eventFrame of a conversation nobody blocked: the same frame to both participants', () => {
  it('turns MessageSent into new_message, the sender\'s copy included', () => {
    given(open(low)).when(sent('hi 👋')).then(newMessage('hi 👋'));
    given(open(high)).when(sent('hi 👋')).then(newMessage('hi 👋'));
    expect(decodeCursor(cursor)).toEqual({ transactionId: 741n, globalPosition: 12n });
  });

  it('turns a MessageSent whose text was erased into new_message with message null', () => {
    given(open(low)).when(sent(null)).then(newMessage(null));
  });

  it('keeps a missing client_msg_id as null', () => {
    const frame = eventFrame(event('MessageSent', { message_id: 'm', sender_id: high, content: 'x', client_msg_id: null, sent_at: at }), open(low));
    expect(frame?.type === 'new_message' && frame.data.client_msg_id).toBeNull();
  });

  it('turns MessagesRead into messages_read', () => {
    given(open(high)).when(read()).then({ type: 'messages_read', ...base(6), timestamp: at, data: { reader_id: low, read_at: at } });
  });

  it('turns ConversationStarted into conversation_created carrying a fresh, unblocked Conversation', () => {
    given(open(high))
      .when(event('ConversationStarted', { conversation_id: conversationId, user1_id: low, user2_id: high, started_by: high, started_at: at }, 1))
      .then({
        type: 'conversation_created',
        ...base(1),
        timestamp: at,
        data: {
          id: conversationId,
          user1_id: low,
          user2_id: high,
          last_message_content: null,
          last_message_at: null,
          created_at: at,
          updated_at: at,
          unread_count: 0,
          blocked_by: null,
        },
      });
  });

  it('turns MessageDeleted into message_deleted, to both participants', () => {
    const expected: EventFrame = { type: 'message_deleted', ...base(8), timestamp: later, data: { id: '01JMESSAGE', deleted_at: later } };
    given(open(low)).when(deleted()).then(expected);
    given(open(high)).when(deleted()).then(expected);
  });
});

describe('eventFrame of a block', () => {
  it('gives the blocker conversation_blocked with their Conversation, blocked_by set from the event', () => {
    given(blockedBy(high, high, row(3)))
      .when(blocked(high, low))
      .then({ type: 'conversation_blocked', ...base(7), timestamp: later, data: { ...row(3), blocked_by: high } });
  });

  it('gives the blocked user conversation_removed, without data', () => {
    given(blockedBy(high, low, row(0))).when(blocked(high, low)).then({ type: 'conversation_removed', ...base(7), timestamp: later });
  });

  it('frames the block by the event, whatever block the caller passed', () => {
    given(open(high, row(3)))
      .when(blocked(high, low))
      .then({ type: 'conversation_blocked', ...base(7), timestamp: later, data: { ...row(3), blocked_by: high } });
    given(open(low)).when(blocked(high, low)).then({ type: 'conversation_removed', ...base(7), timestamp: later });
  });

  it('carries what the event says when the read tables have no row for the blocker', () => {
    given(blockedBy(low, low))
      .when(blocked(low, high))
      .then({
        type: 'conversation_blocked',
        ...base(7),
        timestamp: later,
        data: {
          id: conversationId,
          user1_id: low,
          user2_id: high,
          last_message_content: null,
          last_message_at: null,
          created_at: later,
          updated_at: later,
          unread_count: 0,
          blocked_by: low,
        },
      });
  });
});

describe('eventFrame while the conversation is blocked', () => {
  it('gives the blocked user nothing of the conversation', () => {
    for (const source of [sent('after the block'), sent(null), read(), deleted()]) given(blockedBy(high, low)).when(source).thenNothing();
  });

  it('still gives the blocker every frame', () => {
    given(blockedBy(high, high)).when(sent('to myself')).then(newMessage('to myself'));
    given(blockedBy(high, high)).when(read()).then({ type: 'messages_read', ...base(6), timestamp: at, data: { reader_id: low, read_at: at } });
    given(blockedBy(high, high))
      .when(deleted())
      .then({ type: 'message_deleted', ...base(8), timestamp: later, data: { id: '01JMESSAGE', deleted_at: later } });
  });
});

describe('eventFrame of an unblock', () => {
  it('gives the blocker conversation_unblocked with their Conversation, blocked_by null', () => {
    given(open(high, row(1)))
      .when(unblocked(high, low))
      .then({ type: 'conversation_unblocked', ...base(9), timestamp: later, data: { ...row(1), blocked_by: null } });
  });

  it('gives the other user conversation_restored with their own Conversation', () => {
    given(open(low, row(4)))
      .when(unblocked(high, low))
      .then({ type: 'conversation_restored', ...base(9), timestamp: later, data: { ...row(4), blocked_by: null } });
  });

  it('carries what the event says when the read tables have no row for the recipient', () => {
    const fromEvent = { id: conversationId, user1_id: low, user2_id: high, last_message_content: null, last_message_at: null };
    const data = { ...fromEvent, created_at: later, updated_at: later, unread_count: 0, blocked_by: null };
    given(open(high)).when(unblocked(high, low)).then({ type: 'conversation_unblocked', ...base(9), timestamp: later, data });
    given(open(low)).when(unblocked(high, low)).then({ type: 'conversation_restored', ...base(9), timestamp: later, data });
  });

  it('keeps a row without a last message at last_message_at null', () => {
    const empty = { ...row(0), last_message_content: null, last_message_at: null };
    given(open(low, empty))
      .when(unblocked(high, low))
      .then({ type: 'conversation_restored', ...base(9), timestamp: later, data: { ...empty, blocked_by: null } });
  });

  it('frames what follows the unblock for both again', () => {
    given(open(low)).when(sent('back', 10)).then({ ...newMessage('back'), seq: 10 });
  });
});

describe('recipientsOfConversationData', () => {
  it('names the blocker of a block, both users of an unblock, nobody for the rest', () => {
    expect(recipientsOfConversationData(blocked(high, low))).toEqual([high]);
    expect(recipientsOfConversationData(unblocked(high, low))).toEqual([high, low]);
    for (const source of [sent('x'), read(), deleted()]) expect(recipientsOfConversationData(source)).toEqual([]);
  });

  it('names nobody for a block whose data is off its schema', () => {
    expect(recipientsOfConversationData(event('ConversationBlocked', { blocked_by: high }))).toEqual([]);
    expect(recipientsOfConversationData(event('ConversationUnblocked', { unblocked_by: String(high) }))).toEqual([]);
  });
});

describe('eventFrame, whatever the event', () => {
  it('gives timestamps with milliseconds whatever precision the event stored', () => {
    const frame = eventFrame(event('MessagesRead', { reader_id: low, up_to_version: 4, read_at: '2026-11-24T10:00:00Z' }), open(high));
    expect(frame?.timestamp).toBe('2026-11-24T10:00:00.000Z');
  });

  it('is the same frame every time for the same event and recipient (a repeat is byte-for-byte a repeat)', () => {
    for (const source of [read(), blocked(high, low)]) {
      expect(JSON.stringify(eventFrame(source, open(high, row(2))))).toBe(JSON.stringify(eventFrame(source, open(high, row(2)))));
    }
  });

  it('frames an event read from the log (the catch-up) as the same event from NATS', () => {
    const recorded = {
      streamId: conversationId,
      version: 5,
      eventId: '01JEVENT',
      type: 'MessageSent',
      data: sent('from the log').data,
      metadata: {},
      createdAt: 0,
      transactionId: 741n,
      globalPosition: 12n,
    };
    expect(recordedEventFrame(recorded, open(low))).toEqual(newMessage('from the log'));
    expect(recordedEventFrame(recorded, blockedBy(high, low))).toBeNull();
  });

  it('refuses an unknown type, data off its schema and a bad position', () => {
    expect(() => eventFrame(event('TestEvent', { i: 1 }), open(low))).toThrow(UnframeableEventError);
    expect(() => eventFrame(event('MessageSent', { message_id: 'm', sender_id: '42', content: 'x', sent_at: at }), open(low))).toThrow(
      UnframeableEventError,
    );
    expect(() => eventFrame(event('ConversationBlocked', { blocked_by: high }), open(low))).toThrow(UnframeableEventError);
    expect(() => eventFrame({ ...read(), position: 'nope' }, open(low))).toThrow(UnframeableEventError);
  });
});
