import { messageSent } from '../commands/conversation/events.js';
import type { Participants } from '../delivery/participants.js';

/** What Matcha's notify service reads on its channel (API.md, "Notifications to Matcha"), keys in this order. */
export type Notification = {
  readonly to_user_id: number;
  readonly notif_type: '3';
  readonly message: string;
  readonly conversation_id: string;
  readonly message_id: string;
  readonly sender_id: number;
};

export const NEW_MESSAGE_TEXT = 'Vous avez reçu un nouveau message';

/** A `MessageSent` as the notifier needs it. */
export type SentMessage = {
  readonly conversationId: string;
  readonly messageId: string;
  readonly senderId: number;
  /** Null once the message was deleted for everyone. */
  readonly content: string | null;
};

/** The message an event announces, or null for any other event (or a `MessageSent` of another shape). */
export function sentMessageOf(event: { readonly stream_id: string; readonly type: string; readonly data: unknown }): SentMessage | null {
  const parsed = messageSent.safeParse({ type: event.type, data: event.data });
  if (!parsed.success) return null;
  const { message_id, sender_id, content } = parsed.data.data;
  return { conversationId: event.stream_id, messageId: message_id, senderId: sender_id, content };
}

/** Why a message gets no notification. */
export type Silence = 'erased' | 'no_recipient' | 'blocked' | 'recipient_online';

/** What was looked up about a message when its batch was handled. */
export type MessageFacts = {
  /** Null when no conversation has the message's id. */
  readonly participants: Participants | null;
  /** Who blocks the conversation now; null when nobody does. */
  readonly blockedBy: number | null;
  /** The users among the batch's recipients who hold a live socket lease now. */
  readonly online: ReadonlySet<number>;
};

/** The other participant: whom a message is for, or null when the sender is not one of the two. */
export function recipientOf(message: SentMessage, participants: Participants): number | null {
  const [low, high] = participants;
  if (message.senderId === low) return high;
  if (message.senderId === high) return low;
  return null;
}

/**
 * The notification a message calls for, or why none: never for a message already deleted for everyone,
 * nor in a conversation blocked now (by either participant), nor to a recipient with an open socket.
 */
export function notificationFor(message: SentMessage, facts: MessageFacts): Notification | Silence {
  if (message.content === null) return 'erased';
  const recipient = facts.participants && recipientOf(message, facts.participants);
  if (recipient === null) return 'no_recipient';
  if (facts.blockedBy !== null) return 'blocked';
  if (facts.online.has(recipient)) return 'recipient_online';
  return {
    to_user_id: recipient,
    notif_type: '3',
    message: NEW_MESSAGE_TEXT,
    conversation_id: message.conversationId,
    message_id: message.messageId,
    sender_id: message.senderId,
  };
}
