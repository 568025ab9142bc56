import { z } from 'zod';
import { conversationEvent } from '../commands/conversation/events.js';
import { formatFeedPosition, parseFeedPosition, type RecordedEvent } from '../event-store/recorded-event.js';
import { encodeCursor } from './cursor.js';

/**
 * The WebSocket frames built from events (API.md, "Server to client"): `new_message`, `messages_read`,
 * `conversation_created`. The fan-out publishes them as JSON on the participants' delivery subjects and the
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
  }),
});

export const eventFrameSchema = z.discriminatedUnion('type', [newMessageFrame, messagesReadFrame, conversationCreatedFrame]);

export type NewMessageFrame = z.infer<typeof newMessageFrame>;
export type MessagesReadFrame = z.infer<typeof messagesReadFrame>;
export type ConversationCreatedFrame = z.infer<typeof conversationCreatedFrame>;
export type EventFrame = z.infer<typeof eventFrameSchema>;
export type EventFrameType = EventFrame['type'];

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
 * Builds the client frame of one conversation event. Pure: the same event always gives the same frame,
 * live or replayed. The frame's `timestamp` is the event's own time (sent, read, started), not the time
 * of delivery, so a repeat is byte-for-byte the same frame.
 * @throws UnframeableEventError for an event this version does not turn into a frame.
 */
export function eventFrame(event: FrameableEvent): EventFrame {
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
        },
      };
    }
    case 'ConversationBlocked':
    case 'ConversationUnblocked':
    case 'MessageDeleted':
      throw new UnframeableEventError(`${domainEvent.type} has no frame yet`);
    default: {
      const unknown: never = domainEvent;
      throw new UnframeableEventError(`unknown event ${JSON.stringify(unknown)}`);
    }
  }
}

/** The frame of an event read from the Postgres log (the catch-up read): `eventFrame` of its fields. */
export function recordedEventFrame(event: RecordedEvent): EventFrame {
  return eventFrame({
    stream_id: event.streamId,
    version: event.version,
    type: event.type,
    data: event.data,
    position: formatFeedPosition(event),
  });
}
