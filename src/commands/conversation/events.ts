import { z } from 'zod';

/**
 * The events of a conversation stream. Stored events are never rewritten: a change of shape is a new
 * event type (e.g. `MessageSent.v2`), and readers keep handling the old one. The one exception is erasure
 * (delete for everyone): the `content` of the deleted message's `MessageSent` is set to null in place, and
 * the erasure is recorded (docs/event-store.md, "Erasure"); the rest of the event stays.
 */

const userId = z.number().int().positive();
const isoTime = z.iso.datetime({ offset: false });

export const conversationStarted = z.object({
  type: z.literal('ConversationStarted'),
  data: z.object({
    conversation_id: z.string(),
    user1_id: userId,
    user2_id: userId,
    started_by: userId,
    started_at: isoTime,
  }),
});

export const messageSent = z.object({
  type: z.literal('MessageSent'),
  data: z.object({
    message_id: z.string(),
    sender_id: userId,
    /** Null once the message was deleted for everyone and its text erased from the log. */
    content: z.string().nullable(),
    client_msg_id: z.string().nullable(),
    sent_at: isoTime,
  }),
});

export const messagesRead = z.object({
  type: z.literal('MessagesRead'),
  data: z.object({
    reader_id: userId,
    /** Every message of the other participant up to this stream version is read. */
    up_to_version: z.number().int().positive(),
    read_at: isoTime,
  }),
});

/** `blocked_by` made the conversation vanish for `blocked_user_id` (an unmatch), until it is unblocked. */
export const conversationBlocked = z.object({
  type: z.literal('ConversationBlocked'),
  data: z.object({ blocked_by: userId, blocked_user_id: userId, blocked_at: isoTime }),
});

export const conversationUnblocked = z.object({
  type: z.literal('ConversationUnblocked'),
  data: z.object({ unblocked_by: userId, unblocked_user_id: userId, unblocked_at: isoTime }),
});

/** The sender took the message back for everyone: a tombstone stays in its place, its text is erased. */
export const messageDeleted = z.object({
  type: z.literal('MessageDeleted'),
  data: z.object({
    message_id: z.string(),
    /** The version of the deleted message's `MessageSent` in this conversation (its `seq`). */
    message_version: z.number().int().positive(),
    deleted_by: userId,
    deleted_at: isoTime,
  }),
});

export const conversationEvent = z.discriminatedUnion('type', [
  conversationStarted,
  messageSent,
  messagesRead,
  conversationBlocked,
  conversationUnblocked,
  messageDeleted,
]);

export type ConversationStarted = z.infer<typeof conversationStarted>;
export type MessageSent = z.infer<typeof messageSent>;
export type MessagesRead = z.infer<typeof messagesRead>;
export type ConversationBlocked = z.infer<typeof conversationBlocked>;
export type ConversationUnblocked = z.infer<typeof conversationUnblocked>;
export type MessageDeleted = z.infer<typeof messageDeleted>;
export type ConversationEvent = z.infer<typeof conversationEvent>;

export const CONVERSATION_STREAM_TYPE = 'conversation';
