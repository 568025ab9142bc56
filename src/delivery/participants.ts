import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { BoundedMap } from './bounded-map.js';

/** The two users of a conversation, lower id first. */
export type Participants = readonly [number, number];

export type ParticipantDirectory = {
  /** The conversation's participants, or null when no conversation has this id. */
  participantsOf(conversationId: string): Promise<Participants | null>;
  /** Records what an event already says (a `ConversationStarted`), sparing the read. */
  remember(conversationId: string, participants: Participants): void;
};

const pairRow = z.object({ user_low: z.coerce.number().int(), user_high: z.coerce.number().int() });

/**
 * Resolves who takes part in a conversation. `MessageSent` and `MessagesRead` name one user only, so the
 * answer comes from `conversation_pairs` on the write side: written in the same transaction as the
 * conversation's first event and never changed after, hence safe to cache for good (bounded, least
 * recently used out). The read side is not used: it may lag behind the event being delivered.
 */
export function createParticipantDirectory(deps: {
  readonly connection: CommonQueryMethods;
  readonly capacity: number;
}): ParticipantDirectory {
  const cache = new BoundedMap<string, Participants>(deps.capacity);
  return {
    async participantsOf(conversationId) {
      const cached = cache.get(conversationId);
      if (cached) return cached;
      const row = await deps.connection.maybeOne(sql.type(pairRow)`
        SELECT user_low, user_high FROM conversation_pairs WHERE conversation_id = ${conversationId}`);
      if (!row) return null;
      const participants: Participants = [row.user_low, row.user_high];
      cache.set(conversationId, participants);
      return participants;
    },
    remember(conversationId, participants) {
      cache.set(conversationId, participants);
    },
  };
}
