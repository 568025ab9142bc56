import { z } from 'zod';
import { conversationEvent } from '../commands/conversation/events.js';
import { formatFeedPosition, parseFeedPosition, type RecordedEvent } from '../event-store/recorded-event.js';
import { encodeCursor } from './cursor.js';

/**
 * The WebSocket frames built from events (API.md, "Server to client" and "Additions"): `new_message`,
 * `messages_read`, `conversation_created`, `conversation_blocked` / `conversation_removed`,
 * `conversation_unblocked` / `conversation_restored`, `message_deleted`. A frame is for one recipient: a block
 * frames differently for the blocker and the blocked user, and while a conversation is blocked its blocked
 * user gets no frame of it. The fan-out publishes them as JSON on each participant's delivery subject and the
 * catch-up read returns them, so a client sees the same frame live and on resume. The schemas are the NATS
 * boundary: a gateway parses what it receives with `eventFrameSchema`.
 */

const userId = z.number().int().positive();
const isoTime = z.iso.datetime();

const frameFields = {
  conversation_id: z.string(),
  /** The event's version in its conversation: 1, 2, 3, ... with no gaps. */
  seq: z.number().int().positive(),
  /** Opaque resume cursor (the event's feed position); see cursor.ts. */
  cursor: z.string(),
  timestamp: isoTime,
};

export const newMessageFrame = z.object({
  type: z.literal('new_message'),
  ...frameFields,
  data: z.object({
    id: z.string(),
    sender_id: userId,
    /** Null when the message has been deleted for everyone since (a catch-up of an erased message). */
    message: z.string().nullable(),
    timestamp: isoTime,
    read_at: z.null(),
    client_msg_id: z.string().nullable(),
  }),
});

export const messagesReadFrame = z.object({
  type: z.literal('messages_read'),
  ...frameFields,
  data: z.object({ reader_id: userId, read_at: isoTime }),
});

export const conversationCreatedFrame = z.object({
  type: z.literal('conversation_created'),
  ...frameFields,
  data: z.object({
    id: z.string(),
    user1_id: userId,
    user2_id: userId,
    last_message_content: z.null(),
    last_message_at: z.null(),
    created_at: isoTime,
    updated_at: isoTime,
    unread_count: z.number().int().nonnegative(),
    blocked_by: z.null(),
  }),
});

/** A Conversation as the API shows it to the recipient (API.md), `blocked_by` as of the event. */
const conversationSchema = z.object({
  id: z.string(),
  user1_id: userId,
  user2_id: userId,
  last_message_content: z.string().nullable(),
  last_message_at: isoTime.nullable(),
  created_at: isoTime,
  updated_at: isoTime,
  unread_count: z.number().int().nonnegative(),
  blocked_by: userId.nullable(),
});

/** To the blocker: the conversation stays in their list, blocked. */
export const conversationBlockedFrame = z.object({ type: z.literal('conversation_blocked'), ...frameFields, data: conversationSchema });

/** To the blocked user: the conversation is gone for them; no frame of it follows until it is unblocked. */
export const conversationRemovedFrame = z.object({ type: z.literal('conversation_removed'), ...frameFields });

/** To the blocker who unblocked. */
export const conversationUnblockedFrame = z.object({ type: z.literal('conversation_unblocked'), ...frameFields, data: conversationSchema });

/** To the user who was blocked: the conversation is back in their list. */
export const conversationRestoredFrame = z.object({ type: z.literal('conversation_restored'), ...frameFields, data: conversationSchema });

/** To both participants: the message is a tombstone now (its `new_message` replays with `message: null`). */
export const messageDeletedFrame = z.object({
  type: z.literal('message_deleted'),
  ...frameFields,
  data: z.object({ id: z.string(), deleted_at: isoTime }),
});

export const eventFrameSchema = z.discriminatedUnion('type', [
  newMessageFrame,
  messagesReadFrame,
  conversationCreatedFrame,
  conversationBlockedFrame,
  conversationRemovedFrame,
  conversationUnblockedFrame,
  conversationRestoredFrame,
  messageDeletedFrame,
]);

export type NewMessageFrame = z.infer<typeof newMessageFrame>;
export type MessagesReadFrame = z.infer<typeof messagesReadFrame>;
export type ConversationCreatedFrame = z.infer<typeof conversationCreatedFrame>;
export type EventFrame = z.infer<typeof eventFrameSchema>;
export type EventFrameType = EventFrame['type'];

/** The Conversation fields the read tables give (queries.ts `Conversation`); `blocked_by` comes from the event. */
export type FrameConversation = Omit<z.infer<typeof conversationSchema>, 'blocked_by'>;

/** Whom a frame is built for. */
export type FrameRecipient = {
  readonly userId: number;
  /**
   * The block in force at the event (`blockAt` of its version, or carried in order with `blockAfter`): who
   * blocked the conversation, or null. A block or unblock event frames by its own data.
   */
  readonly blockedBy: number | null;
  /**
   * The conversation as the recipient sees it in the read tables, for the frames that carry one
   * (`recipientsOfConversationData`); null or absent when the read tables have no row of it for them.
   */
  readonly conversation?: FrameConversation | null;
};

/** What a frame is built from: the JetStream event message (relay/event-message.ts) has these fields. */
export type FrameableEvent = {
  readonly stream_id: string;
  readonly version: number;
  readonly type: string;
  readonly data: Record<string, unknown>;
  /** The feed position, `"<transaction_id>:<global_position>"`. */
  readonly position: string;
};

/** The event cannot become a frame: an unknown type, data that does not match its schema, a bad position. */
export class UnframeableEventError extends Error {
  override readonly name = 'UnframeableEventError';
}

/** Timestamps in frames are ISO 8601 UTC with milliseconds, whatever precision the event stored. */
const isoMs = (text: string): string => new Date(text).toISOString();

/**
 * Builds the frame of one conversation event for one recipient, or null when the recipient gets none (the
 * conversation is blocked against them). Pure: the same event and recipient always give the same frame,
 * live or replayed. The frame's `timestamp` is the event's own time (sent, read, started, blocked, ...), not
 * the time of delivery, so a repeat is byte-for-byte the same frame.
 *
 * A `MessageSent` whose text was erased (a delete for everyone, `content: null`) frames as `new_message`
 * with `message: null`; its `message_deleted` comes later in the same conversation (a higher `seq`), so a
 * client catching up learns from that frame when it was deleted.
 *
 * A block or unblock frame carries the recipient's Conversation from the read tables with `blocked_by` set
 * from the event, whatever version the row is at. Without a row (the projector has not projected the
 * conversation for them) it carries what the event says: the ids, `blocked_by`, the event's time as
 * `created_at`/`updated_at`, no last message and no unread count; the client's next REST read has the rest.
 * @throws UnframeableEventError for an event this version does not turn into a frame.
 */
export function eventFrame(event: FrameableEvent, recipient: FrameRecipient): EventFrame | null {
  const position = parseFeedPosition(event.position);
  if (!position) throw new UnframeableEventError(`event ${event.stream_id}@${event.version}: bad position ${event.position}`);
  const parsed = conversationEvent.safeParse({ type: event.type, data: event.data });
  if (!parsed.success) {
    throw new UnframeableEventError(`event ${event.stream_id}@${event.version} of type ${event.type} has no frame`, {
      cause: parsed.error,
    });
  }
  const base = {
    conversation_id: event.stream_id,
    seq: event.version,
    cursor: encodeCursor(position),
  };
  const domainEvent = parsed.data;
  if (domainEvent.type === 'ConversationBlocked') {
    const { data } = domainEvent;
    const blockedAt = isoMs(data.blocked_at);
    if (recipient.userId !== data.blocked_by) return { type: 'conversation_removed', ...base, timestamp: blockedAt };
    return {
      type: 'conversation_blocked',
      ...base,
      timestamp: blockedAt,
      data: blockFrameConversation(event.stream_id, [data.blocked_by, data.blocked_user_id], blockedAt, data.blocked_by, recipient),
    };
  }
  if (domainEvent.type === 'ConversationUnblocked') {
    const { data } = domainEvent;
    const unblockedAt = isoMs(data.unblocked_at);
    return {
      type: recipient.userId === data.unblocked_by ? 'conversation_unblocked' : 'conversation_restored',
      ...base,
      timestamp: unblockedAt,
      data: blockFrameConversation(event.stream_id, [data.unblocked_by, data.unblocked_user_id], unblockedAt, null, recipient),
    };
  }
  // While the conversation is blocked it does not exist for the blocked user: nothing of it reaches them.
  if (recipient.blockedBy !== null && recipient.blockedBy !== recipient.userId) return null;
  switch (domainEvent.type) {
    case 'MessageSent': {
      const { data } = domainEvent;
      const sentAt = isoMs(data.sent_at);
      return {
        type: 'new_message',
        ...base,
        timestamp: sentAt,
        data: {
          id: data.message_id,
          sender_id: data.sender_id,
          message: data.content,
          timestamp: sentAt,
          read_at: null,
          client_msg_id: data.client_msg_id,
        },
      };
    }
    case 'MessagesRead': {
      const readAt = isoMs(domainEvent.data.read_at);
      return { type: 'messages_read', ...base, timestamp: readAt, data: { reader_id: domainEvent.data.reader_id, read_at: readAt } };
    }
    case 'ConversationStarted': {
      const { data } = domainEvent;
      const startedAt = isoMs(data.started_at);
      return {
        type: 'conversation_created',
        ...base,
        timestamp: startedAt,
        data: {
          id: data.conversation_id,
          user1_id: data.user1_id,
          user2_id: data.user2_id,
          last_message_content: null,
          last_message_at: null,
          created_at: startedAt,
          updated_at: startedAt,
          unread_count: 0,
          blocked_by: null,
        },
      };
    }
    case 'MessageDeleted': {
      const deletedAt = isoMs(domainEvent.data.deleted_at);
      return { type: 'message_deleted', ...base, timestamp: deletedAt, data: { id: domainEvent.data.message_id, deleted_at: deletedAt } };
    }
    default: {
      const unknown: never = domainEvent;
      throw new UnframeableEventError(`unknown event ${JSON.stringify(unknown)}`);
    }
  }
}

/**
 * The participants whose frame of this event carries a Conversation from the read tables: the blocker for a
 * block, both for an unblock; nobody for any other event.
 */
export function recipientsOfConversationData(event: Pick<FrameableEvent, 'type' | 'data'>): number[] {
  if (event.type !== 'ConversationBlocked' && event.type !== 'ConversationUnblocked') return [];
  const parsed = conversationEvent.safeParse({ type: event.type, data: event.data });
  if (!parsed.success) return [];
  const domainEvent = parsed.data;
  if (domainEvent.type === 'ConversationBlocked') return [domainEvent.data.blocked_by];
  if (domainEvent.type === 'ConversationUnblocked') return [domainEvent.data.unblocked_by, domainEvent.data.unblocked_user_id];
  return [];
}

/** The Conversation of a block frame: the recipient's row with the event's `blocked_by`, or what the event says. */
function blockFrameConversation(
  conversationId: string,
  users: readonly [number, number],
  at: string,
  blockedBy: number | null,
  recipient: FrameRecipient,
): z.infer<typeof conversationSchema> {
  const row = recipient.conversation;
  if (!row) {
    return {
      id: conversationId,
      user1_id: Math.min(...users),
      user2_id: Math.max(...users),
      last_message_content: null,
      last_message_at: null,
      created_at: at,
      updated_at: at,
      unread_count: 0,
      blocked_by: blockedBy,
    };
  }
  return {
    id: row.id,
    user1_id: row.user1_id,
    user2_id: row.user2_id,
    last_message_content: row.last_message_content,
    last_message_at: row.last_message_at === null ? null : isoMs(row.last_message_at),
    created_at: isoMs(row.created_at),
    updated_at: isoMs(row.updated_at),
    unread_count: row.unread_count,
    blocked_by: blockedBy,
  };
}

/** The fields of an event read from the Postgres log that a frame is built from. */
export function frameableOf(event: RecordedEvent): FrameableEvent {
  return {
    stream_id: event.streamId,
    version: event.version,
    type: event.type,
    data: event.data,
    position: formatFeedPosition(event),
  };
}

/** The frame of an event read from the Postgres log (the catch-up read): `eventFrame` of its fields. */
export function recordedEventFrame(event: RecordedEvent, recipient: FrameRecipient): EventFrame | null {
  return eventFrame(frameableOf(event), recipient);
}
