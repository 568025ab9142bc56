import { sql, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import {
  foldConversation,
  subtractUnread,
  type Deletion,
  type DiscussionRow,
  type MessageRow,
  type ProjectableEvent,
  type ReadRange,
} from './conversation-fold.js';

/** The read tables a projection writes; the replay CLI points it at a fresh generation. */
export type ReadTables = { readonly discussion: string; readonly messages: string };

/** The names clients read: views over the active generation's tables (migration 003). */
export const LIVE_TABLES: ReadTables = { discussion: 'discussion', messages: 'messages' };

export type { ProjectableEvent } from './conversation-fold.js';

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
  last_message_version: z.number().int().nullable(),
  version: z.number().int(),
  user1_unread: z.number().int(),
  user2_unread: z.number().int(),
  last_activity_at: z.number(),
}) satisfies z.ZodType<DiscussionRow>;

/** Everything a batch changes, gathered from the folds and written with a handful of set-based statements. */
type BatchChanges = {
  readonly createdDiscussions: readonly DiscussionRow[];
  readonly updatedDiscussions: Map<string, DiscussionRow>;
  readonly messages: readonly MessageRow[];
  readonly readRanges: readonly ReadRange[];
  readonly deletions: readonly Deletion[];
};

/**
 * Applies a batch of conversation events (several conversations, any order, repeats allowed) to the read
 * tables inside the caller's transaction, together with the guard: each conversation's applied version,
 * `discussion.version`, locked for the transaction. Per conversation, events at or below the applied version
 * are skipped, so applying a batch twice has the effect of applying it once; the rest must follow the applied
 * version without a hole, or the hole is read from the log with `readMissing`.
 *
 * What the events change is `foldConversation`'s (conversation-fold.ts, pure: blocking, deleting, erased
 * texts, unread counts); this function does the IO around it: it locks and loads the rows, fills holes, folds
 * each conversation, and writes the whole batch set-based (one statement per table and kind of change),
 * which is what lets the replay rebuild at tens of thousands of events a second. The effect equals applying
 * the events one by one in version order.
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

  const created: DiscussionRow[] = [];
  const updated = new Map<string, DiscussionRow>();
  const messages: MessageRow[] = [];
  const readRanges: ReadRange[] = [];
  const deletions: Deletion[] = [];
  let applied = 0;
  for (const id of ids) {
    const before = current.get(id);
    const pending = await eventsToApply(id, byStream.get(id) ?? [], before?.version ?? 0, options.readMissing);
    const changed = foldConversation(id, before, pending);
    if (!changed) continue;
    if (changed.created) created.push(changed.discussion);
    else updated.set(id, changed.discussion);
    messages.push(...changed.messages);
    readRanges.push(...changed.readRanges);
    deletions.push(...changed.deletions);
    applied += pending.length;
  }
  const changes: BatchChanges = { createdDiscussions: created, updatedDiscussions: updated, messages, readRanges, deletions };
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
    // The fold counted this batch's messages only: take off the stored ones the UPDATE marked.
    for (const { conv_id: conversationId, reader_id: readerId, marked: count } of marked) {
      const row = changes.updatedDiscussions.get(conversationId);
      if (row) changes.updatedDiscussions.set(conversationId, subtractUnread(row, readerId, count));
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
