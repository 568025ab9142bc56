import { sql, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import { conversationEvent, type ConversationEvent } from '../../commands/conversation/events.js';
import type { RecordedEvent } from '../../event-store/recorded-event.js';

/** The read tables a projection writes; the replay CLI points it at fresh ones. */
export type ReadTables = { readonly discussion: string; readonly messages: string };

export const LIVE_TABLES: ReadTables = { discussion: 'discussion', messages: 'messages' };

/** What a projection needs of a stored event. */
export type ProjectableEvent = Pick<RecordedEvent, 'version' | 'type' | 'data'>;

/** Raised when events do not follow the applied version: the caller must first fill the gap from the log. */
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

const guardRow = z.object({ version: z.number().int() });

/** The conversation's applied version in these tables, locked until the transaction ends; 0 when absent. */
export async function appliedVersion(
  transaction: DatabaseTransactionConnection,
  tables: ReadTables,
  streamId: string,
): Promise<number> {
  return (
    (await transaction.maybeOneFirst(sql.type(guardRow)`
      SELECT version FROM ${sql.identifier([tables.discussion])} WHERE id = ${streamId} FOR UPDATE`)) ?? 0
  );
}

/**
 * Applies events of one conversation, in version order, to the read tables, inside the caller's
 * transaction, together with the guard (`discussion.version`). Events at or below the applied version are
 * skipped, so applying twice has the effect of applying once.
 * @returns how many events were applied (not skipped).
 * @throws ProjectionGapError when the first new event is not the next version.
 */
export async function applyConversationEvents(
  transaction: DatabaseTransactionConnection,
  tables: ReadTables,
  streamId: string,
  events: readonly ProjectableEvent[],
): Promise<number> {
  let applied = await appliedVersion(transaction, tables, streamId);
  let count = 0;
  for (const recorded of events) {
    if (recorded.version <= applied) continue;
    if (recorded.version !== applied + 1) throw new ProjectionGapError(streamId, applied, recorded.version);
    const event = conversationEvent.parse({ type: recorded.type, data: recorded.data });
    await applyOne(transaction, tables, streamId, recorded.version, event);
    applied = recorded.version;
    count++;
  }
  return count;
}

async function applyOne(
  transaction: DatabaseTransactionConnection,
  tables: ReadTables,
  streamId: string,
  version: number,
  event: ConversationEvent,
): Promise<void> {
  const discussion = sql.identifier([tables.discussion]);
  const messages = sql.identifier([tables.messages]);
  switch (event.type) {
    case 'ConversationStarted': {
      const { user1_id, user2_id, started_at } = event.data;
      await transaction.query(sql.unsafe`
        INSERT INTO ${discussion}
          (id, user1_id, user2_id, created_at, updated_at, last_activity_at, version)
        VALUES (${streamId}, ${user1_id}, ${user2_id}, ${started_at}, ${started_at}, ${started_at}, ${version})`);
      return;
    }
    case 'MessageSent': {
      const { message_id, sender_id, content, client_msg_id, sent_at } = event.data;
      await transaction.query(sql.unsafe`
        INSERT INTO ${messages} (id, conv_id, sender_id, msg, time, client_msg_id, version)
        VALUES (${message_id}, ${streamId}, ${sender_id}, ${content}, ${sent_at}, ${client_msg_id}, ${version})`);
      // The recipient's unread count grows; the sender's does not.
      await transaction.query(sql.unsafe`
        UPDATE ${discussion} SET
          last_message_content = ${content}, last_message_at = ${sent_at}, updated_at = ${sent_at},
          last_activity_at = ${sent_at}, version = ${version},
          user1_unread = user1_unread + (user1_id <> ${sender_id})::int,
          user2_unread = user2_unread + (user2_id <> ${sender_id})::int
        WHERE id = ${streamId}`);
      return;
    }
    case 'MessagesRead': {
      const { reader_id, up_to_version, read_at } = event.data;
      const marked = await transaction.query(sql.unsafe`
        UPDATE ${messages} SET read_at = ${read_at}
        WHERE conv_id = ${streamId} AND sender_id <> ${reader_id} AND version <= ${up_to_version} AND read_at IS NULL`);
      await transaction.query(sql.unsafe`
        UPDATE ${discussion} SET
          version = ${version}, updated_at = greatest(updated_at, ${read_at}::timestamptz),
          user1_unread = user1_unread - CASE WHEN user1_id = ${reader_id} THEN ${marked.rowCount} ELSE 0 END,
          user2_unread = user2_unread - CASE WHEN user2_id = ${reader_id} THEN ${marked.rowCount} ELSE 0 END
        WHERE id = ${streamId}`);
      return;
    }
    default: {
      const unknown: never = event;
      throw new Error(`unknown event ${JSON.stringify(unknown)}`);
    }
  }
}
