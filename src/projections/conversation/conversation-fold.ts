import { conversationEvent } from '../../commands/conversation/events.js';
import type { RecordedEvent } from '../../event-store/recorded-event.js';

/** What a projection needs of a stored event. */
export type ProjectableEvent = Pick<RecordedEvent, 'streamId' | 'version' | 'type' | 'data'>;

/** A `discussion` row as the fold sees it (timestamps as epoch ms). */
export type DiscussionRow = {
  readonly id: string;
  readonly user1_id: number;
  readonly user2_id: number;
  readonly last_message_content: string | null;
  readonly last_message_at: number | null;
  readonly created_at: number;
  readonly updated_at: number;
  /** The participant who blocked the conversation; null when it is not blocked. */
  readonly blocked_by: number | null;
  /** The version of the message `last_message_content` was taken from; null before the first message. */
  readonly last_message_version: number | null;
  /** The applied version: the last event folded into the row. */
  readonly version: number;
  readonly user1_unread: number;
  readonly user2_unread: number;
  readonly last_activity_at: number;
};

/** A `messages` row to insert (timestamps as epoch ms). */
export type MessageRow = {
  readonly id: string;
  readonly conv_id: string;
  readonly sender_id: number;
  /** Null once deleted for everyone, or when the log's text was erased. */
  readonly msg: string | null;
  readonly time: number;
  readonly read_at: number | null;
  readonly client_msg_id: string | null;
  readonly version: number;
  readonly deleted_at: number | null;
};

/** "The message at this version was deleted", for a row stored before the batch. */
export type Deletion = { readonly conversationId: string; readonly messageVersion: number; readonly deletedAt: number };

/**
 * "Reader read the other participant's messages with versions in (after, upTo]", for rows stored before the
 * batch. Ranges of one reader do not overlap, so each stored message is marked (and counted) once.
 */
export type ReadRange = {
  readonly conversationId: string;
  readonly readerId: number;
  readonly afterVersion: number;
  readonly upToVersion: number;
  readonly readAt: number;
};

/** What a run of events changes in one conversation's read rows. */
export type ConversationChanges = {
  /**
   * The conversation's row after the events: to insert when `created`, else to update. Its unread counts
   * count this batch's messages only: the stored messages `readRanges` mark are counted by the write that
   * marks them, then taken off with `subtractUnread`.
   */
  readonly discussion: DiscussionRow;
  /** True when there was no stored row (the events start the conversation). */
  readonly created: boolean;
  /** The messages the events sent, as they stand after the events (read, deleted). */
  readonly messages: readonly MessageRow[];
  /** Reads of messages stored before the batch, in event order. */
  readonly readRanges: readonly ReadRange[];
  /** Deletes of messages stored before the batch, in event order. */
  readonly deletions: readonly Deletion[];
};

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * Folds one conversation's events into what they change in the read tables, given its stored `discussion`
 * row (undefined when none). Pure: no IO, the inputs are left as they are.
 *
 * `events` must follow `stored.version` (or start at 1) without a hole, in version order: the caller skips
 * what was applied and fills holes (`eventsToApply`). The result equals applying the events one at a time:
 * - `MessageSent` adds a message, makes it the last message, and adds one to the recipient's unread count;
 *   an erased text (null) is kept null;
 * - `MessagesRead` marks read the other participant's messages up to `up_to_version` that were unread, and
 *   takes them off the reader's unread count (those of this batch here; stored ones through `readRanges`);
 * - `ConversationBlocked` / `ConversationUnblocked` set / clear `blocked_by`;
 * - `MessageDeleted` makes the message a tombstone (`msg` null, `deleted_at` set; in `messages` when sent in
 *   this batch, else a `deletions` entry) and blanks `last_message_content` only when it was taken from that
 *   message; `last_message_at`, the activity order and the unread counts stay (a tombstone stays unread
 *   until read).
 * A message moves `updated_at` to its time; a read, block, unblock or delete moves it forward only.
 * @returns null when `events` is empty (nothing changes).
 * @throws Error on an event before `ConversationStarted`, a second `ConversationStarted`, or an event the
 *   schema refuses.
 */
export function foldConversation(
  id: string,
  stored: DiscussionRow | undefined,
  events: readonly ProjectableEvent[],
): ConversationChanges | null {
  if (events.length === 0) return null;
  let row: Writable<DiscussionRow> | undefined = stored ? { ...stored } : undefined;
  const sent: Writable<MessageRow>[] = [];
  const readRanges: ReadRange[] = [];
  const deletions: Deletion[] = [];
  /** Per reader, the highest `up_to_version` of this batch's reads so far. */
  const covered = new Map<number, number>();
  const requireRow = (version: number): Writable<DiscussionRow> => {
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
        // Stored messages are marked by the writer, which counts what it marked: a range each, never twice.
        const from = covered.get(readerId) ?? 0;
        const storedUpTo = Math.min(upTo, stored?.version ?? 0);
        if (storedUpTo > from) readRanges.push({ conversationId: id, readerId, afterVersion: from, upToVersion: storedUpTo, readAt });
        covered.set(readerId, Math.max(from, upTo));
        row = { ...subtractUnread(target, readerId, marked), updated_at: Math.max(target.updated_at, readAt) };
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
          deletions.push({ conversationId: id, messageVersion, deletedAt });
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

  // Never throws here: each event above started the row or required it.
  const discussion = requireRow(0);
  return { discussion, created: stored === undefined, messages: sent, readRanges, deletions };
}

/** The row with `count` taken off `readerId`'s unread count (a participant's; a stranger's changes nothing). */
export function subtractUnread(row: DiscussionRow, readerId: number, count: number): DiscussionRow {
  return {
    ...row,
    user1_unread: row.user1_id === readerId ? row.user1_unread - count : row.user1_unread,
    user2_unread: row.user2_id === readerId ? row.user2_unread - count : row.user2_unread,
  };
}
