import type { CommonQueryMethods } from 'slonik';
import { getConversation } from '../projections/conversation/queries.js';
import { waitUntilApplied } from '../projections/read-consistency.js';
import type { FrameConversation } from './event-frames.js';

/** How long block and unblock frames wait for the read tables to apply their events. */
export const FRAME_CONVERSATION_WAIT_MS = 1_000;

/** Whose Conversation a frame needs, and the version of the event it frames. */
export type FrameConversationRequest = {
  readonly conversationId: string;
  readonly atVersion: number;
  readonly userIds: readonly number[];
};

export type FrameConversations = {
  /** Conversation id, then user id: the user's Conversation from the read tables; missing when there is no row. */
  get(conversationId: string, userId: number): FrameConversation | null;
  /** False when the read tables had not applied every `atVersion` within the wait: some rows may be older. */
  readonly caughtUp: boolean;
};

/**
 * The Conversations that block and unblock frames carry (event-frames.ts), as each recipient sees them in the
 * read tables. The projector applies the events in parallel with the delivery, so this first waits, once for
 * all the requests and bounded by `waitMs`, until the read tables have applied each conversation up to its
 * `atVersion`, then reads what is there: a projector that is down delays these frames by `waitMs`, never
 * stops them (the frame sets `blocked_by` from the event itself, so it is right whatever version the row is at).
 */
export async function readFrameConversations(
  connection: CommonQueryMethods,
  requests: readonly FrameConversationRequest[],
  waitMs: number,
): Promise<FrameConversations> {
  const wanted = requests.filter((request) => request.userIds.length > 0);
  if (wanted.length === 0) return { get: () => null, caughtUp: true };
  const targets = new Map<string, number>();
  for (const { conversationId, atVersion } of wanted) targets.set(conversationId, Math.max(atVersion, targets.get(conversationId) ?? 0));
  const caughtUp = await waitUntilApplied(connection, targets, { timeoutMs: waitMs });
  const rows = new Map<string, FrameConversation>();
  const key = (conversationId: string, userId: number) => `${conversationId}/${userId}`;
  for (const { conversationId, userIds } of wanted) {
    for (const userId of new Set(userIds)) {
      if (rows.has(key(conversationId, userId))) continue;
      const conversation = await getConversation(connection, userId, conversationId);
      if (conversation) rows.set(key(conversationId, userId), conversation);
    }
  }
  return { get: (conversationId, userId) => rows.get(key(conversationId, userId)) ?? null, caughtUp };
}
