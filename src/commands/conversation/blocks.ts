import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { conversationBlocked } from './events.js';

/**
 * Who blocked a conversation, read from the write side (never from the read tables, which may lag): the
 * block in force now, from the stream's snapshot (written with every append, so always at the stream's
 * version), and the block in force at a given version, from the log (migration 005's partial index). Null
 * when the conversation is not blocked.
 */

const blockRow = z.object({ stream_id: z.string(), blocked_by: z.coerce.number().int().nullable() });

/** The block in force now of each conversation; a conversation missing from the log is left out. */
export async function currentBlocks(
  connection: CommonQueryMethods,
  conversationIds: readonly string[],
): Promise<Map<string, number | null>> {
  if (conversationIds.length === 0) return new Map();
  const rows = await connection.any(sql.type(blockRow)`
    SELECT stream_id, (snapshot ->> 'blockedBy')::bigint AS blocked_by FROM event_streams
    WHERE stream_id = ANY(${sql.array([...new Set(conversationIds)], 'text')})`);
  return new Map(rows.map((row) => [row.stream_id, row.blocked_by]));
}

const changeRow = z.object({ type: z.string(), data: z.record(z.string(), z.unknown()) });

/** The block in force right after event `version` of the conversation (a block event counts as in force). */
export async function blockAt(connection: CommonQueryMethods, conversationId: string, version: number): Promise<number | null> {
  const change = await connection.maybeOne(sql.type(changeRow)`
    SELECT type, data FROM events
    WHERE stream_id = ${conversationId} AND version <= ${version}
      AND type IN ('ConversationBlocked', 'ConversationUnblocked')
    ORDER BY version DESC
    LIMIT 1`);
  if (!change) return null;
  const blocked = conversationBlocked.safeParse(change);
  return blocked.success ? blocked.data.data.blocked_by : null;
}

const partnerRow = z.object({ user_id: z.coerce.number().int(), partner_id: z.coerce.number().int() });

/**
 * The users who share a conversation with `userId` that is not blocked (by either of them): whom `userId`'s
 * presence may be shown to, and whose presence `userId` may see.
 */
export async function unblockedPartnersOf(connection: CommonQueryMethods, userId: number): Promise<number[]> {
  return (await unblockedPartnersOfEach(connection, [userId])).get(userId) ?? [];
}

/** `unblockedPartnersOf` for many users in one statement: each user given, with its partners (maybe none). */
export async function unblockedPartnersOfEach(connection: CommonQueryMethods, userIds: readonly number[]): Promise<Map<number, number[]>> {
  const partners = new Map<number, number[]>(userIds.map((userId) => [userId, []]));
  if (userIds.length === 0) return partners;
  // The primary key serves user_low, conversation_pairs_user_high_idx serves user_high.
  const rows = await connection.any(sql.type(partnerRow)`
    SELECT me.user_id, mine.partner_id
    FROM unnest(${sql.array([...new Set(userIds)], 'int8')}) AS me(user_id)
    CROSS JOIN LATERAL (
      SELECT conversation_id, user_high AS partner_id FROM conversation_pairs WHERE user_low = me.user_id
      UNION ALL
      SELECT conversation_id, user_low AS partner_id FROM conversation_pairs WHERE user_high = me.user_id
    ) AS mine
    JOIN event_streams AS s ON s.stream_id = mine.conversation_id
    WHERE s.snapshot ->> 'blockedBy' IS NULL`);
  for (const row of rows) partners.get(row.user_id)?.push(row.partner_id);
  return partners;
}
