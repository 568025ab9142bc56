import { z } from 'zod';

/**
 * The events of a conversation stream. Stored events are never rewritten: a change of shape is a new
 * event type (e.g. `MessageSent.v2`), and readers keep handling the old one.
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
    content: z.string(),
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

export const conversationEvent = z.discriminatedUnion('type', [conversationStarted, messageSent, messagesRead]);

export type ConversationStarted = z.infer<typeof conversationStarted>;
export type MessageSent = z.infer<typeof messageSent>;
export type MessagesRead = z.infer<typeof messagesRead>;
export type ConversationEvent = z.infer<typeof conversationEvent>;

export const CONVERSATION_STREAM_TYPE = 'conversation';
