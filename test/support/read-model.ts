import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';
import type { ConversationEvent } from '../../src/commands/conversation/events.js';
import { conversationEvent } from '../../src/commands/conversation/events.js';
import { LIVE_TABLES, type ReadTables } from '../../src/projections/conversation/apply-conversation-events.js';
import type { RecordedEvent } from '../../src/event-store/recorded-event.js';
import { readWholeLog } from './event-log.js';
import { waitUntil } from './wait-until.js';
import {
  CONVERSATIONS_PROJECTION,
  createTablesLike,
  generationTables,
  readGenerations,
} from '../../src/projections/read-model-generations.js';

export type ReadModel = { discussion: Record<string, unknown>[]; messages: Record<string, unknown>[] };

let copies = 0;
/** Empty tables shaped like the active generation's, for projecting into side by side. */
export async function createReadTables(pool: DatabasePool): Promise<ReadTables> {
  const suffix = `copy_${++copies}_${Date.now()}`;
  const tables = { discussion: `discussion_${suffix}`, messages: `messages_${suffix}` };
  const { active } = await readGenerations(pool, CONVERSATIONS_PROJECTION);
  await createTablesLike(pool, generationTables(active), tables);
  return tables;
}

const versionSum = z.object({ total: z.coerce.number().int() });

/** The sum of the conversations' applied versions: equal to the number of events once all are projected. */
export async function projectedEventCount(pool: DatabasePool, tables: ReadTables = LIVE_TABLES): Promise<number> {
  return pool.oneFirst(sql.type(versionSum)`
    SELECT coalesce(sum(version), 0) AS total FROM ${sql.identifier([tables.discussion])}`);
}

/** Waits until the live tables hold every event of the log. */
export async function waitForLiveProjection(pool: DatabasePool, timeoutMs = 120_000): Promise<void> {
  const events = (await readWholeLog(pool)).length;
  await waitUntil('the live projector to catch up with the log', async () => (await projectedEventCount(pool)) === events, {
    timeoutMs,
  });
}

/** Every row of both tables, in a stable order, timestamps as ISO strings. */
export async function readModel(pool: DatabasePool, tables: ReadTables): Promise<ReadModel> {
  const row = z.record(z.string(), z.unknown());
  const discussion = await pool.any(sql.type(row)`
    SELECT id, user1_id::int, user2_id::int, last_message_content, last_message_at, last_message_version, blocked_by::int,
           version, user1_unread, user2_unread
    FROM ${sql.identifier([tables.discussion])} ORDER BY id`);
  const messages = await pool.any(sql.type(row)`
    SELECT id, conv_id, sender_id::int, msg, time, read_at, client_msg_id, version, deleted_at
    FROM ${sql.identifier([tables.messages])} ORDER BY conv_id, version`);
  return { discussion: [...discussion], messages: [...messages] };
}

/**
 * The read model computed straight from the log by a plain fold, independent of the projection's SQL:
 * the oracle the projected tables are compared with.
 */
export function foldReadModel(events: readonly RecordedEvent[]): ReadModel {
  const discussions = new Map<string, Record<string, unknown>>();
  const messages = new Map<string, Record<string, unknown>[]>();
  const ms = (iso: string) => Date.parse(iso);
  for (const recorded of events) {
    const event: ConversationEvent = conversationEvent.parse({ type: recorded.type, data: recorded.data });
    const id = recorded.streamId;
    if (event.type === 'ConversationStarted') {
      discussions.set(id, {
        id,
        user1_id: event.data.user1_id,
        user2_id: event.data.user2_id,
        last_message_content: null,
        last_message_at: null,
        last_message_version: null,
        blocked_by: null,
        version: recorded.version,
        user1_unread: 0,
        user2_unread: 0,
      });
      messages.set(id, []);
      continue;
    }
    const discussion = discussions.get(id)!;
    discussion['version'] = recorded.version;
    const list = messages.get(id)!;
    if (event.type === 'MessageSent') {
      list.push({
        id: event.data.message_id,
        conv_id: id,
        sender_id: event.data.sender_id,
        msg: event.data.content,
        time: ms(event.data.sent_at),
        read_at: null,
        client_msg_id: event.data.client_msg_id,
        version: recorded.version,
        deleted_at: null,
      });
      discussion['last_message_content'] = event.data.content;
      discussion['last_message_at'] = ms(event.data.sent_at);
      discussion['last_message_version'] = recorded.version;
    } else if (event.type === 'MessageDeleted') {
      const message = list.find((m) => m['id'] === event.data.message_id)!;
      message['msg'] = null;
      message['deleted_at'] = ms(event.data.deleted_at);
      // The last message deleted: its text is not shown as the conversation's last message.
      if (list.at(-1) === message) discussion['last_message_content'] = null;
    } else if (event.type === 'ConversationBlocked') {
      discussion['blocked_by'] = event.data.blocked_by;
    } else if (event.type === 'ConversationUnblocked') {
      discussion['blocked_by'] = null;
    } else if (event.type === 'MessagesRead') {
      for (const message of list) {
        if (message['sender_id'] !== event.data.reader_id && (message['version'] as number) <= event.data.up_to_version) {
          message['read_at'] ??= ms(event.data.read_at);
        }
      }
    }
    const unread = (reader: unknown) => list.filter((m) => m['sender_id'] !== reader && m['read_at'] === null).length;
    discussion['user1_unread'] = unread(discussion['user1_id']);
    discussion['user2_unread'] = unread(discussion['user2_id']);
  }
  return {
    discussion: [...discussions.values()].sort((a, b) => (String(a['id']) < String(b['id']) ? -1 : 1)),
    messages: [...messages.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .flatMap(([, list]) => list),
  };
}
