import { conversationBlocked, conversationUnblocked } from '../commands/conversation/events.js';

/**
 * The block in force in a conversation as its events pass in order: who blocked it, or null. A block event
 * counts as in force from itself on (as `blockAt` in commands/conversation/blocks.ts), an unblock ends it
 * from itself on. The fan-out and the catch-up carry it from event to event to frame each one for each
 * participant (event-frames.ts).
 */

/** The block in force right after `event`, given the one in force before it. */
export function blockAfter(
  before: number | null,
  event: { readonly type: string; readonly data: Record<string, unknown> },
): number | null {
  if (event.type !== 'ConversationBlocked' && event.type !== 'ConversationUnblocked') return before;
  const blocked = conversationBlocked.safeParse(event);
  if (blocked.success) return blocked.data.data.blocked_by;
  // A block change off its schema cannot be framed either (event-frames.ts): it changes nothing.
  return conversationUnblocked.safeParse(event).success ? null : before;
}
