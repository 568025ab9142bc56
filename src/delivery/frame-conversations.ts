import type { CommonQueryMethods } from 'slonik';
import { getConversation } from '../projections/conversation/queries.js';
import { waitUntilApplied } from '../projections/read-consistency.js';
import type { FrameConversation } from './event-frames.js';

/** How long a block or unblock frame waits for the read tables to apply its event, by default. */
export const FRAME_CONVERSATION_WAIT_MS = 1_000;

export type FrameConversations = {
  /** Each user's Conversation from the read tables; a user without a row there is left out. */
  readonly byUser: ReadonlyMap<number, FrameConversation>;
  /** False when the read tables had not applied `atVersion` within the wait: the rows may be older. */
  readonly caughtUp: boolean;
};

/**
 * The Conversations that block and unblock frames carry (event-frames.ts), as each recipient sees them in the
 * read tables. The projector applies the event in parallel with the delivery, so this first waits, bounded by
 * `waitMs`, until the read tables have applied the conversation up to `atVersion`, then reads what is there:
 * a projector that is down delays these frames by `waitMs` each, never stops them (the frame sets
 * `blocked_by` from the event itself, so it is right whatever version the row is at).
 */
export async function readFrameConversations(
  connection: CommonQueryMethods,
  conversationId: string,
  userIds: readonly number[],
  options: { readonly atVersion: number; readonly waitMs: number },
): Promise<FrameConversations> {
  if (userIds.length === 0) return { byUser: new Map(), caughtUp: true };
  const caughtUp = await waitUntilApplied(connection, new Map([[conversationId, options.atVersion]]), {
    timeoutMs: options.waitMs,
  });
  const byUser = new Map<number, FrameConversation>();
  for (const userId of new Set(userIds)) {
    const conversation = await getConversation(connection, userId, conversationId);
    if (conversation) byUser.set(userId, conversation);
  }
  return { byUser, caughtUp };
}
