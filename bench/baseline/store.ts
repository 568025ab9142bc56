import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';

/** The seed's JSON shapes (integer ids, as the Go service had). */
export type Conversation = {
  readonly id: number;
  readonly user1_id: number;
  readonly user2_id: number;
  readonly last_message_content: string | null;
  readonly last_message_at: string | null;
  readonly created_at: string;
  readonly updated_at: string;
};

export type Message = {
  readonly id: number;
  readonly conv_id: number;
  readonly sender_id: number;
  readonly msg: string;
  readonly time: string;
  readonly read_at: string | null;
};

const iso = (epochMs: number): string => new Date(epochMs).toISOString();

const conversationRow = z.object({
  id: z.number().int(),
  user1_id: z.number().int(),
  user2_id: z.number().int(),
  last_message_content: z.string().nullable(),
  last_message_at: z.number().nullable(),
  created_at: z.number(),
  updated_at: z.number(),
});

const messageRow = z.object({
  id: z.number().int(),
  conv_id: z.number().int(),
  sender_id: z.number().int(),
  msg: z.string(),
  time: z.number(),
  user1_id: z.number().int(),
  user2_id: z.number().int(),
});

const toConversation = (row: z.infer<typeof conversationRow>): Conversation => ({
  ...row,
  last_message_at: row.last_message_at === null ? null : iso(row.last_message_at),
  created_at: iso(row.created_at),
  updated_at: iso(row.updated_at),
});

/** Finds or creates the pair's conversation; `created` tells which (the unique pair decides under races). */
export async function startConversation(pool: DatabasePool, userId: number, otherUserId: number): Promise<{ conversation: Conversation; created: boolean }> {
  const [low, high] = userId < otherUserId ? [userId, otherUserId] : [otherUserId, userId];
  const inserted = await pool.maybeOne(sql.type(conversationRow)`
    INSERT INTO baseline_discussion (user1_id, user2_id) VALUES (${low}, ${high})
    ON CONFLICT (user1_id, user2_id) DO NOTHING
    RETURNING id, user1_id, user2_id, last_message_content, last_message_at, created_at, updated_at`);
  if (inserted) return { conversation: toConversation(inserted), created: true };
  const existing = await pool.one(sql.type(conversationRow)`
    SELECT id, user1_id, user2_id, last_message_content, last_message_at, created_at, updated_at
    FROM baseline_discussion WHERE user1_id = ${low} AND user2_id = ${high}`);
  return { conversation: toConversation(existing), created: false };
}

/**
 * Saves a message and moves the conversation's last message, in one statement (one round trip, one
 * commit). The UPDATE's WHERE is the participant check: nothing is written for a conversation that is
 * missing or not the sender's.
 * @returns the message and both participants, or null for "not found".
 */
export async function saveMessage(
  pool: DatabasePool,
  senderId: number,
  conversationId: number,
  content: string,
): Promise<{ message: Message; participants: readonly [number, number] } | null> {
  const row = await pool.maybeOne(sql.type(messageRow)`
    WITH discussion AS (
      UPDATE baseline_discussion
      SET last_message_content = ${content}, last_message_at = now(), updated_at = now()
      WHERE id = ${conversationId} AND (user1_id = ${senderId} OR user2_id = ${senderId})
      RETURNING id, user1_id, user2_id
    )
    INSERT INTO baseline_messages (conv_id, sender_id, msg)
    SELECT id, ${senderId}, ${content} FROM discussion
    RETURNING id, conv_id, sender_id, msg, time,
      (SELECT user1_id FROM discussion) AS user1_id, (SELECT user2_id FROM discussion) AS user2_id`);
  if (!row) return null;
  return {
    message: { id: row.id, conv_id: row.conv_id, sender_id: row.sender_id, msg: row.msg, time: iso(row.time), read_at: null },
    participants: [row.user1_id, row.user2_id],
  };
}
