import type { Conversation } from '../client/src/index.js';

/**
 * The signed-in user's conversations as the page lists them: the server's Conversation objects, each
 * replaced whole by a fresh copy (REST or a frame's `data`) when something happens in it, so that unread
 * counts and last messages are the server's and a replayed frame cannot count a message twice.
 */

export type { Conversation };

export type ConversationList = ReadonlyMap<string, Conversation>;

export const emptyConversationList: ConversationList = new Map();

export function withConversations(list: ConversationList, conversations: readonly Conversation[]): ConversationList {
  const next = new Map(list);
  for (const conversation of conversations) next.set(conversation.id, conversation);
  return next;
}

export function withoutConversation(list: ConversationList, conversationId: string): ConversationList {
  const next = new Map(list);
  next.delete(conversationId);
  return next;
}

export function partnerOf(conversation: Conversation, me: number): number {
  return conversation.user1_id === me ? conversation.user2_id : conversation.user1_id;
}

/** Most recent activity first, as the server lists them. */
export function orderedConversations(list: ConversationList): readonly Conversation[] {
  const activity = (conversation: Conversation) => conversation.last_message_at ?? conversation.created_at;
  return [...list.values()].sort((a, b) => activity(b).localeCompare(activity(a)) || b.id.localeCompare(a.id));
}
