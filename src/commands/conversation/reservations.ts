import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { Reservation } from '../../event-store/append-to-stream.js';
import { messageSent } from './events.js';

/**
 * The conversation's uniqueness reservations, written by the append together with the events that take them
 * (append-to-stream.ts), and read back here: one conversation per pair of users (`conversation_pairs`), and
 * one message per sender and `client_msg_id` (`message_client_ids`). The commands name no table or column of
 * their own; this module does.
 */

/** Two users in ascending order: the key of their one conversation. */
export type UserPair = { readonly low: number; readonly high: number };

export const userPairOf = (one: number, other: number): UserPair => ({ low: Math.min(one, other), high: Math.max(one, other) });

/** The reservation a new conversation takes for its pair. */
export function pairReservation(pair: UserPair, conversationId: string): Reservation {
  return {
    table: 'conversation_pairs',
    columns: ['user_low', 'user_high', 'conversation_id'],
    types: ['int8', 'int8', 'text'],
    rows: [[pair.low, pair.high, conversationId]],
  };
}

/** The pair's conversation, if one was started (committed). */
export async function conversationOfPair(connection: CommonQueryMethods, pair: UserPair): Promise<string | null> {
  return connection.maybeOneFirst(sql.type(z.object({ conversation_id: z.string() }))`
    SELECT conversation_id FROM conversation_pairs WHERE user_low = ${pair.low} AND user_high = ${pair.high}`);
}

/** A sender's `client_msg_id`: what one message may be sent with, once. */
export type ClientIdKey = { readonly senderId: number; readonly clientMsgId: string };

/** The map key of a `ClientIdKey`. */
export const clientIdKey = (key: ClientIdKey): string => `${key.senderId}\u0000${key.clientMsgId}`;

/** A message that takes its sender's `client_msg_id`, at the version its `MessageSent` gets. */
export type ClientIdTaken = ClientIdKey & { readonly conversationId: string; readonly messageId: string; readonly version: number };

/** The reservations of the messages of a batch that carry a `client_msg_id` (none when no message does). */
export function clientIdReservations(messages: readonly ClientIdTaken[]): Reservation[] {
  if (messages.length === 0) return [];
  return [
    {
      table: 'message_client_ids',
      columns: ['sender_id', 'client_msg_id', 'conversation_id', 'message_id', 'version'],
      types: ['int8', 'text', 'text', 'text', 'int4'],
      rows: messages.map((message) => [message.senderId, message.clientMsgId, message.conversationId, message.messageId, message.version]),
    },
  ];
}

/** The message first sent with a `client_msg_id`, as the log has it now. */
export type OriginalMessage = {
  readonly id: string;
  readonly conversationId: string;
  readonly senderId: number;
  /** Null once the message was deleted for everyone (its text erased). */
  readonly content: string | null;
  readonly deletedAt: string | null;
  readonly clientMsgId: string;
  readonly sentAt: string;
  readonly version: number;
};

const originalMessageRow = z.object({
  sender_id: z.bigint().transform(Number),
  client_msg_id: z.string(),
  conversation_id: z.string(),
  version: z.number().int(),
  type: z.string().nullable(),
  data: z.record(z.string(), z.unknown()).nullable(),
  deleted_at: z.string().nullable(),
});

/** The messages first sent with these keys, by `clientIdKey`; one statement. */
export async function findByClientIds(connection: CommonQueryMethods, keys: readonly ClientIdKey[]): Promise<Map<string, OriginalMessage>> {
  if (keys.length === 0) return new Map();
  const rows = await connection.any(sql.type(originalMessageRow)`
    SELECT ids.sender_id, ids.client_msg_id, ids.conversation_id, ids.version, e.type, e.data,
           -- Only for an erased message (deleted for everyone): when its delete was decided.
           CASE WHEN e.data -> 'content' = 'null'::jsonb THEN (
             SELECT d.data ->> 'deleted_at' FROM events AS d
             WHERE d.stream_id = ids.conversation_id AND d.version > ids.version AND d.type = 'MessageDeleted'
               AND d.data ->> 'message_id' = ids.message_id
             LIMIT 1) END AS deleted_at
    FROM ${sql.unnest(keys.map((key) => [key.senderId, key.clientMsgId]), ['int8', 'text'])} AS wanted(sender_id, client_msg_id)
    JOIN message_client_ids AS ids USING (sender_id, client_msg_id)
    LEFT JOIN events AS e ON e.stream_id = ids.conversation_id AND e.version = ids.version`);
  return new Map(
    rows.map((row) => {
      if (row.type === null || row.data === null) throw new Error(`message of a reserved client_msg_id is missing at version ${row.version}`);
      const { data } = messageSent.parse({ type: row.type, data: row.data });
      const original: OriginalMessage = {
        id: data.message_id,
        conversationId: row.conversation_id,
        senderId: data.sender_id,
        content: data.content,
        deletedAt: row.deleted_at,
        clientMsgId: row.client_msg_id,
        sentAt: data.sent_at,
        version: row.version,
      };
      return [clientIdKey({ senderId: row.sender_id, clientMsgId: row.client_msg_id }), original];
    }),
  );
}
