import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { discussionColumns, LIVE_TABLES, type ReadTables } from './apply-conversation-events.js';

/** A conversation as the API shows it to one of its participants. */
export type Conversation = {
  readonly id: string;
  readonly user1_id: number;
  readonly user2_id: number;
  readonly last_message_content: string | null;
  readonly last_message_at: string | null;
  readonly created_at: string;
  readonly updated_at: string;
  /** The participant who blocked the conversation (always the caller: the other one does not see it); null when not blocked. */
  readonly blocked_by: number | null;
  /** The caller's unread messages from the other participant (tombstones included, until read). */
  readonly unread_count: number;
};

export type Message = {
  readonly id: string;
  readonly conv_id: string;
  readonly sender_id: number;
  /** Null for a message deleted for everyone (a tombstone). */
  readonly msg: string | null;
  readonly time: string;
  readonly read_at: string | null;
  readonly client_msg_id: string | null;
  /** The message's `seq` in its conversation. */
  readonly seq: number;
  /** When the message was deleted for everyone; null when it was not. */
  readonly deleted_at: string | null;
};

const iso = (epochMs: number): string => new Date(epochMs).toISOString();
const isoOrNull = (epochMs: number | null): string | null => (epochMs === null ? null : iso(epochMs));

const conversationRow = discussionColumns.extend({ unread_count: z.number().int() });

const toConversation = (row: z.infer<typeof conversationRow>): Conversation => ({
  ...row,
  last_message_at: isoOrNull(row.last_message_at),
  created_at: iso(row.created_at),
  updated_at: iso(row.updated_at),
});

function conversationColumns(userId: number) {
  return sql.fragment`
    id, user1_id, user2_id, last_message_content, last_message_at, created_at, updated_at, blocked_by,
    CASE WHEN user1_id = ${userId} THEN user1_unread ELSE user2_unread END AS unread_count`;
}

/**
 * The conversations that exist for `userId` as one of its two participant columns: for the user a
 * conversation was blocked against, it does not exist at all (the blocker still has it).
 */
function visibleAs(column: 'user1_id' | 'user2_id', userId: number) {
  return sql.fragment`${sql.identifier([column])} = ${userId} AND (blocked_by IS NULL OR blocked_by = ${userId})`;
}

function visibleTo(userId: number) {
  return sql.fragment`((${visibleAs('user1_id', userId)}) OR (${visibleAs('user2_id', userId)}))`;
}

export const MAX_CONVERSATION_PAGE_SIZE = 500;
/** Above what most users have: for them the default answer is the whole list, as the seed's was. */
export const DEFAULT_CONVERSATION_PAGE_SIZE = 100;

/** A page of the list: at most `limit`, after the conversation `before` (an id from the previous page). */
export type ConversationPage = { readonly limit: number; readonly before?: string };

const cursorRow = z.object({ id: z.string() });

/**
 * The user's conversations, most recent activity first (the last message, or the creation before one), a page
 * at a time: `before` is a keyset cursor on `(last_activity_at, id)` of a conversation of the user, as cheap
 * at any depth as the first page.
 * @returns `bad_cursor` when `before` is not one of the user's conversations.
 */
export async function listConversations(
  connection: CommonQueryMethods,
  userId: number,
  page: ConversationPage = { limit: DEFAULT_CONVERSATION_PAGE_SIZE },
  tables: ReadTables = LIVE_TABLES,
): Promise<Conversation[] | 'bad_cursor'> {
  const table = sql.identifier([tables.discussion]);
  let after = sql.fragment`TRUE`;
  if (page.before !== undefined) {
    const cursor = await connection.maybeOne(sql.type(cursorRow)`
      SELECT id FROM ${table} WHERE id = ${page.before} AND ${visibleTo(userId)}`);
    if (!cursor) return 'bad_cursor';
    // Compared with the row's own timestamp, to the microsecond.
    after = sql.fragment`(last_activity_at, id) < (SELECT last_activity_at, id FROM ${table} WHERE id = ${cursor.id})`;
  }
  // Two index range scans (one per participant column), each cut at the page size, merged: no scan of other
  // users' rows, and no more rows read than the page needs.
  const rows = await connection.any(sql.type(conversationRow)`
    SELECT ${conversationColumns(userId)}
    FROM (
      (SELECT * FROM ${table} WHERE ${visibleAs('user1_id', userId)} AND ${after} ORDER BY last_activity_at DESC, id DESC LIMIT ${page.limit})
      UNION ALL
      (SELECT * FROM ${table} WHERE ${visibleAs('user2_id', userId)} AND ${after} ORDER BY last_activity_at DESC, id DESC LIMIT ${page.limit})
    ) AS mine
    ORDER BY last_activity_at DESC, id DESC
    LIMIT ${page.limit}`);
  return rows.map(toConversation);
}

/**
 * One conversation, or null when it does not exist for `userId`: missing, a stranger's, or blocked against them.
 */
export async function getConversation(
  connection: CommonQueryMethods,
  userId: number,
  conversationId: string,
  tables: ReadTables = LIVE_TABLES,
): Promise<Conversation | null> {
  const row = await connection.maybeOne(sql.type(conversationRow)`
    SELECT ${conversationColumns(userId)}
    FROM ${sql.identifier([tables.discussion])}
    WHERE id = ${conversationId} AND ${visibleTo(userId)}`);
  return row ? toConversation(row) : null;
}

export const MAX_PAGE_SIZE = 1000;
export const DEFAULT_PAGE_SIZE = 50;

export type MessagePage =
  | { readonly limit: number; readonly offset: number }
  | { readonly limit: number; readonly before: string };

const messageRow = z.object({
  id: z.string(),
  conv_id: z.string(),
  sender_id: z.coerce.number().int(),
  msg: z.string().nullable(),
  time: z.number(),
  read_at: z.number().nullable(),
  client_msg_id: z.string().nullable(),
  version: z.number().int(),
  deleted_at: z.number().nullable(),
});

/**
 * A page of a conversation's messages, newest first, for a participant. `before` (a message id) is a keyset
 * cursor on the message's version: as cheap at any depth as the first page, unlike `offset`.
 * @returns `not_found` when the conversation does not exist for `userId`; `bad_cursor` when `before` is not
 * one of its messages.
 */
export async function listMessages(
  connection: CommonQueryMethods,
  userId: number,
  conversationId: string,
  page: MessagePage,
  tables: ReadTables = LIVE_TABLES,
): Promise<Message[] | 'not_found' | 'bad_cursor'> {
  if (!(await getConversation(connection, userId, conversationId, tables))) return 'not_found';
  const messages = sql.identifier([tables.messages]);
  let rows: readonly z.infer<typeof messageRow>[];
  if ('before' in page) {
    const cursor = await connection.maybeOneFirst(sql.type(z.object({ version: z.number().int() }))`
      SELECT version FROM ${messages} WHERE id = ${page.before} AND conv_id = ${conversationId}`);
    if (cursor === null) return 'bad_cursor';
    rows = await connection.any(sql.type(messageRow)`
      SELECT id, conv_id, sender_id, msg, time, read_at, client_msg_id, version, deleted_at FROM ${messages}
      WHERE conv_id = ${conversationId} AND version < ${cursor}
      ORDER BY version DESC LIMIT ${page.limit}`);
  } else {
    rows = await connection.any(sql.type(messageRow)`
      SELECT id, conv_id, sender_id, msg, time, read_at, client_msg_id, version, deleted_at FROM ${messages}
      WHERE conv_id = ${conversationId}
      ORDER BY version DESC LIMIT ${page.limit} OFFSET ${page.offset}`);
  }
  return rows.map(({ version, time, read_at, deleted_at, ...row }) => ({
    ...row,
    time: iso(time),
    read_at: isoOrNull(read_at),
    seq: version,
    deleted_at: isoOrNull(deleted_at),
  }));
}
