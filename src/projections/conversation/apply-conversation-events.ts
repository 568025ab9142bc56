import { sql, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import { conversationEvent } from '../../commands/conversation/events.js';
import type { RecordedEvent } from '../../event-store/recorded-event.js';

/** The read tables a projection writes; the replay CLI points it at a fresh generation. */
export type ReadTables = { readonly discussion: string; readonly messages: string };

/** The names clients read: views over the active generation's tables (migration 003). */
export const LIVE_TABLES: ReadTables = { discussion: 'discussion', messages: 'messages' };

/** What a projection needs of a stored event. */
export type ProjectableEvent = Pick<RecordedEvent, 'streamId' | 'version' | 'type' | 'data'>;

/** Reads versions `afterVersion + 1 .. toVersion` of a conversation from the log, to fill a gap. */
export type ReadMissing = (streamId: string, afterVersion: number, toVersion: number) => Promise<readonly ProjectableEvent[]>;

/** Raised when events do not follow the applied version and there is no way to fill the gap. */
export class ProjectionGapError extends Error {
  override readonly name = 'ProjectionGapError';
  constructor(
    readonly streamId: string,
    readonly applied: number,
    readonly next: number,
  ) {
    super(`conversation ${streamId}: applied version ${applied}, next event is version ${next}`);
  }
}

/** The `discussion` columns the API shows (timestamps as epoch ms); queries extend it with their own. */
export const discussionColumns = z.object({
  id: z.string(),
  user1_id: z.coerce.number().int(),
  user2_id: z.coerce.number().int(),
  last_message_content: z.string().nullable(),
  last_message_at: z.number().nullable(),
  created_at: z.number(),
  updated_at: z.number(),
  /** The participant who blocked the conversation; null when it is not blocked. */
  blocked_by: z.coerce.number().int().nullable(),
});

const discussionRow = discussionColumns.extend({
  /** The version of the message `last_message_content` was taken from; null before the first message. */
  last_message_version: z.number().int().nullable(),
  version: z.number().int(),
  user1_unread: z.number().int(),
  user2_unread: z.number().int(),
  last_activity_at: z.number(),
});
type DiscussionRow = z.infer<typeof discussionRow>;

type MessageRow = {
  readonly id: string;
  readonly conv_id: string;
  readonly sender_id: number;
  msg: string | null;
  readonly time: number;
  read_at: number | null;
  readonly client_msg_id: string | null;
  readonly version: number;
  deleted_at: number | null;
};

/** "The message at this version was deleted", for rows already stored: made a tombstone by one UPDATE. */
type Deletion = { readonly conversationId: string; readonly messageVersion: number; readonly deletedAt: number };

/** "Reader read the other participant's messages with versions in (after, upTo]", for rows already stored. */
type ReadRange = {
  readonly conversationId: string;
  readonly readerId: number;
  readonly afterVersion: number;
  readonly upToVersion: number;
  readonly readAt: number;
};

/** Everything a batch changes, gathered in memory and written with a handful of set-based statements. */
type BatchChanges = {
  readonly createdDiscussions: DiscussionRow[];
  readonly updatedDiscussions: Map<string, DiscussionRow>;
  readonly messages: MessageRow[];
  readonly readRanges: ReadRange[];
  readonly deletions: Deletion[];
};

/**
 * Applies a batch of conversation events (several conversations, any order, repeats allowed) to the read
 * tables inside the caller's transaction, together with the guard: each conversation's applied version,
 * `discussion.version`, locked for the transaction. Per conversation, events at or below the applied version
 * are skipped, so applying a batch twice has the effect of applying it once; the rest must follow the applied
 * version without a hole, or the hole is read from the log with `readMissing`.
 *
 * The effect equals applying the events one by one in version order; the work is set-based (one statement
 * per table and kind of change), which is what lets the replay rebuild at tens of thousands of events a second.
 *
 * Blocking sets `blocked_by` (unblocking clears it); deleting makes the message a tombstone (`msg` null,
 * `deleted_at` set) in its place, and blanks `last_message_content` when it was taken from that message
 * (`last_message_version`), so a deleted text is never shown; `last_message_at` and the activity order stay.
 * Both move `updated_at` (the conversation as shown changed) and leave the unread counts alone: a tombstone
 * is still a message in the page, unread until the recipient reads, as before the delete. A `MessageSent`
 * whose content was erased in the log (null) projects to a null text, so an erased log and the live one
 * give the same tables once its `MessageDeleted` is applied.
 * @returns how many events were applied (not skipped).
 * @throws ProjectionGapError when a hole cannot be filled.
 */
export async function applyConversationEvents(
  transaction: DatabaseTransactionConnection,
  tables: ReadTables,
  events: readonly ProjectableEvent[],
  options: { readonly readMissing?: ReadMissing } = {},
): Promise<number> {
  if (events.length === 0) return 0;
  const byStream = groupByStream(events);
  const ids = [...byStream.keys()].sort();
  // A fixed lock order, so two appliers on overlapping batches cannot deadlock.
  const stored = await transaction.any(sql.type(discussionRow)`
    SELECT id, user1_id, user2_id, last_message_content, last_message_at, created_at, updated_at, blocked_by,
           last_message_version, version, user1_unread, user2_unread, last_activity_at
    FROM ${sql.identifier([tables.discussion])}
    WHERE id = ANY(${sql.array(ids, 'text')})
    ORDER BY id
    FOR UPDATE`);
  const current = new Map(stored.map((row) => [row.id, row]));

  const changes: BatchChanges = {
    createdDiscussions: [],
    updatedDiscussions: new Map(),
    messages: [],
    readRanges: [],
    deletions: [],
  };
  let applied = 0;
  for (const id of ids) {
    const before = current.get(id);
    const pending = await eventsToApply(id, byStream.get(id) ?? [], before?.version ?? 0, options.readMissing);
    if (pending.length === 0) continue;
    foldConversation(id, before, pending, changes);
    applied += pending.length;
  }
  await writeChanges(transaction, tables, changes);
  return applied;
}

function groupByStream(events: readonly ProjectableEvent[]): Map<string, ProjectableEvent[]> {
  const byStream = new Map<string, ProjectableEvent[]>();
  for (const event of events) {
    const list = byStream.get(event.streamId);
    if (list) list.push(event);
    else byStream.set(event.streamId, [event]);
  }
  return byStream;
}

/** The events after `applied`, in version order and without repeats; a hole is filled from the log or fails. */
async function eventsToApply(
  streamId: string,
  events: readonly ProjectableEvent[],
  applied: number,
  readMissing: ReadMissing | undefined,
): Promise<readonly ProjectableEvent[]> {
  const byVersion = new Map<number, ProjectableEvent>();
  for (const event of events) if (event.version > applied) byVersion.set(event.version, event);
  const pending = [...byVersion.values()].sort((a, b) => a.version - b.version);
  const hole = pending.findIndex((event, index) => event.version !== applied + 1 + index);
  if (hole === -1) return pending;
  const lastVersion = pending.at(-1)?.version ?? applied;
  if (!readMissing) throw new ProjectionGapError(streamId, applied + hole, pending[hole]?.version ?? lastVersion);
  const fromLog = await readMissing(streamId, applied, lastVersion);
  const stillMissing = fromLog.findIndex((event, index) => event.version !== applied + 1 + index);
  if (stillMissing !== -1 || fromLog.length !== lastVersion - applied) {
    throw new ProjectionGapError(streamId, applied, applied + 1);
  }
  return fromLog;
}

function foldConversation(
  id: string,
  before: DiscussionRow | undefined,
  events: readonly ProjectableEvent[],
  changes: BatchChanges,
): void {
  let row: DiscussionRow | undefined = before ? { ...before } : undefined;
  const sent: MessageRow[] = [];
  /** Per reader, the highest `up_to_version` of this batch's reads so far. */
  const covered = new Map<number, number>();
  const requireRow = (version: number): DiscussionRow => {
    if (!row) throw new Error(`conversation ${id}: event version ${version} before ConversationStarted`);
    return row;
  };

  for (const recorded of events) {
    const event = conversationEvent.parse({ type: recorded.type, data: recorded.data });
    switch (event.type) {
      case 'ConversationStarted': {
        if (row) throw new Error(`conversation ${id}: started twice (version ${recorded.version})`);
        const startedAt = Date.parse(event.data.started_at);
        row = {
          id,
          user1_id: event.data.user1_id,
          user2_id: event.data.user2_id,
          last_message_content: null,
          last_message_at: null,
          created_at: startedAt,
          updated_at: startedAt,
          blocked_by: null,
          last_message_version: null,
          version: recorded.version,
          user1_unread: 0,
          user2_unread: 0,
          last_activity_at: startedAt,
        };
        break;
      }
      case 'MessageSent': {
        const target = requireRow(recorded.version);
        const sentAt = Date.parse(event.data.sent_at);
        const senderId = event.data.sender_id;
        sent.push({
          id: event.data.message_id,
          conv_id: id,
          sender_id: senderId,
          msg: event.data.content,
          time: sentAt,
          read_at: null,
          client_msg_id: event.data.client_msg_id,
          version: recorded.version,
          deleted_at: null,
        });
        target.last_message_content = event.data.content;
        target.last_message_version = recorded.version;
        target.last_message_at = sentAt;
        target.updated_at = sentAt;
        target.last_activity_at = sentAt;
        // The recipient's unread count grows; the sender's does not.
        if (target.user1_id !== senderId) target.user1_unread++;
        if (target.user2_id !== senderId) target.user2_unread++;
        break;
      }
      case 'MessagesRead': {
        const target = requireRow(recorded.version);
        const { reader_id: readerId, up_to_version: upTo } = event.data;
        const readAt = Date.parse(event.data.read_at);
        let marked = 0;
        for (const message of sent) {
          if (message.sender_id !== readerId && message.version <= upTo && message.read_at === null) {
            message.read_at = readAt;
            marked++;
          }
        }
        decrementUnread(target, readerId, marked);
        // Rows stored before this batch are marked by one UPDATE later; it also counts what it marked.
        const from = covered.get(readerId) ?? 0;
        const storedUpTo = Math.min(upTo, before?.version ?? 0);
        if (storedUpTo > from) {
          changes.readRanges.push({ conversationId: id, readerId, afterVersion: from, upToVersion: storedUpTo, readAt });
        }
        covered.set(readerId, Math.max(from, upTo));
        target.updated_at = Math.max(target.updated_at, readAt);
        break;
      }
      case 'ConversationBlocked': {
        const target = requireRow(recorded.version);
        target.blocked_by = event.data.blocked_by;
        target.updated_at = Math.max(target.updated_at, Date.parse(event.data.blocked_at));
        break;
      }
      case 'ConversationUnblocked': {
        const target = requireRow(recorded.version);
        target.blocked_by = null;
        target.updated_at = Math.max(target.updated_at, Date.parse(event.data.unblocked_at));
        break;
      }
      case 'MessageDeleted': {
        const target = requireRow(recorded.version);
        const { message_version: messageVersion } = event.data;
        const deletedAt = Date.parse(event.data.deleted_at);
        const inBatch = sent.find((message) => message.version === messageVersion);
        if (inBatch) {
          inBatch.msg = null;
          inBatch.deleted_at = deletedAt;
        } else {
          changes.deletions.push({ conversationId: id, messageVersion, deletedAt });
        }
        // The tombstone keeps its place as the last message (last_message_at stays), without its text.
        if (target.last_message_version === messageVersion) target.last_message_content = null;
        target.updated_at = Math.max(target.updated_at, deletedAt);
        break;
      }
      default: {
        const unknown: never = event;
        throw new Error(`unknown event ${JSON.stringify(unknown)}`);
      }
    }
    requireRow(recorded.version).version = recorded.version;
  }

  changes.messages.push(...sent);
  if (!row) return;
  if (before) changes.updatedDiscussions.set(id, row);
  else changes.createdDiscussions.push(row);
}

function decrementUnread(row: DiscussionRow, readerId: number, count: number): void {
  if (row.user1_id === readerId) row.user1_unread -= count;
  if (row.user2_id === readerId) row.user2_unread -= count;
}

const iso = (epochMs: number): string => new Date(epochMs).toISOString();
const isoOrNull = (epochMs: number | null): string | null => (epochMs === null ? null : iso(epochMs));

const markedRow = z.object({ conv_id: z.string(), reader_id: z.coerce.number().int(), marked: z.coerce.number().int() });

async function writeChanges(
  transaction: DatabaseTransactionConnection,
  tables: ReadTables,
  changes: BatchChanges,
): Promise<void> {
  const discussion = sql.identifier([tables.discussion]);
  const messages = sql.identifier([tables.messages]);

  // Reads of stored messages first, before this batch's messages exist in the table.
  if (changes.readRanges.length > 0) {
    const ranges = changes.readRanges;
    const marked = await transaction.any(sql.type(markedRow)`
      WITH marked AS (
        UPDATE ${messages} AS m SET read_at = r.read_at
        FROM unnest(
          ${sql.array(ranges.map((r) => r.conversationId), 'text')},
          ${sql.array(ranges.map((r) => r.readerId), 'int8')},
          ${sql.array(ranges.map((r) => r.afterVersion), 'int4')},
          ${sql.array(ranges.map((r) => r.upToVersion), 'int4')},
          ${sql.array(ranges.map((r) => iso(r.readAt)), 'timestamptz')}
        ) AS r(conv_id, reader_id, after_version, up_to_version, read_at)
        WHERE m.conv_id = r.conv_id AND m.sender_id <> r.reader_id
          AND m.version > r.after_version AND m.version <= r.up_to_version AND m.read_at IS NULL
        RETURNING m.conv_id, r.reader_id
      )
      SELECT conv_id, reader_id, count(*) AS marked FROM marked GROUP BY conv_id, reader_id`);
    for (const { conv_id: conversationId, reader_id: readerId, marked: count } of marked) {
      const row = changes.updatedDiscussions.get(conversationId);
      if (row) decrementUnread(row, readerId, count);
    }
  }

  // Deletes of stored messages: the text goes, the row stays as a tombstone (read_at is left as it is).
  if (changes.deletions.length > 0) {
    const deletions = changes.deletions;
    await transaction.query(sql.unsafe`
      UPDATE ${messages} AS m SET msg = NULL, deleted_at = d.deleted_at
      FROM unnest(
        ${sql.array(deletions.map((d) => d.conversationId), 'text')},
        ${sql.array(deletions.map((d) => d.messageVersion), 'int4')},
        ${sql.array(deletions.map((d) => iso(d.deletedAt)), 'timestamptz')}
      ) AS d(conv_id, version, deleted_at)
      WHERE m.conv_id = d.conv_id AND m.version = d.version`);
  }

  if (changes.messages.length > 0) {
    const rows = changes.messages;
    await transaction.query(sql.unsafe`
      INSERT INTO ${messages} (id, conv_id, sender_id, msg, time, read_at, client_msg_id, version, deleted_at)
      SELECT * FROM unnest(
        ${sql.array(rows.map((m) => m.id), 'text')},
        ${sql.array(rows.map((m) => m.conv_id), 'text')},
        ${sql.array(rows.map((m) => m.sender_id), 'int8')},
        ${sql.array(rows.map((m) => m.msg), 'text')},
        ${sql.array(rows.map((m) => iso(m.time)), 'timestamptz')},
        ${sql.array(rows.map((m) => isoOrNull(m.read_at)), 'timestamptz')},
        ${sql.array(rows.map((m) => m.client_msg_id), 'text')},
        ${sql.array(rows.map((m) => m.version), 'int4')},
        ${sql.array(rows.map((m) => isoOrNull(m.deleted_at)), 'timestamptz')}
      )`);
  }

  const discussionColumns = (rows: readonly DiscussionRow[]) => sql.fragment`unnest(
    ${sql.array(rows.map((d) => d.id), 'text')},
    ${sql.array(rows.map((d) => d.user1_id), 'int8')},
    ${sql.array(rows.map((d) => d.user2_id), 'int8')},
    ${sql.array(rows.map((d) => d.last_message_content), 'text')},
    ${sql.array(rows.map((d) => isoOrNull(d.last_message_at)), 'timestamptz')},
    ${sql.array(rows.map((d) => iso(d.created_at)), 'timestamptz')},
    ${sql.array(rows.map((d) => iso(d.updated_at)), 'timestamptz')},
    ${sql.array(rows.map((d) => d.blocked_by), 'int8')},
    ${sql.array(rows.map((d) => d.last_message_version), 'int4')},
    ${sql.array(rows.map((d) => d.version), 'int4')},
    ${sql.array(rows.map((d) => d.user1_unread), 'int4')},
    ${sql.array(rows.map((d) => d.user2_unread), 'int4')},
    ${sql.array(rows.map((d) => iso(d.last_activity_at)), 'timestamptz')}
  ) AS d(id, user1_id, user2_id, last_message_content, last_message_at, created_at, updated_at, blocked_by,
         last_message_version, version, user1_unread, user2_unread, last_activity_at)`;

  if (changes.createdDiscussions.length > 0) {
    await transaction.query(sql.unsafe`
      INSERT INTO ${discussion} (id, user1_id, user2_id, last_message_content, last_message_at, created_at,
                                 updated_at, blocked_by, last_message_version, version, user1_unread,
                                 user2_unread, last_activity_at)
      SELECT * FROM ${discussionColumns(changes.createdDiscussions)}`);
  }
  if (changes.updatedDiscussions.size > 0) {
    await transaction.query(sql.unsafe`
      UPDATE ${discussion} AS t SET
        last_message_content = d.last_message_content, last_message_at = d.last_message_at,
        updated_at = d.updated_at, blocked_by = d.blocked_by, last_message_version = d.last_message_version,
        version = d.version, user1_unread = d.user1_unread,
        user2_unread = d.user2_unread, last_activity_at = d.last_activity_at
      FROM ${discussionColumns([...changes.updatedDiscussions.values()])}
      WHERE t.id = d.id`);
  }
}
