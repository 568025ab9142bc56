import { sql, type CommonQueryMethods, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import { eraseEventFields } from '../../event-store/event-erasures.js';
import type { RecordedEvent } from '../../event-store/recorded-event.js';
import { DomainError } from '../domain-error.js';
import { handleCommand } from '../handle-command.js';
import { conversationDecider, deletedAt, type StoredMessage } from './conversation.js';
import type { CommandDeps } from './conversation-commands.js';
import { messageDeleted } from './events.js';

/** Crockford base32, 26 characters: every message id is a ULID. */
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/** The `MessageSent` fields a delete erases from the log; the rest of the event stays. */
export const ERASED_MESSAGE_FIELDS = ['content'] as const;

const storedMessageRow = z.object({ stream_id: z.string(), version: z.number().int(), sender_id: z.coerce.number().int() });

/**
 * The conversation, version and sender of a message, from the log (migration 005's partial index on the
 * message id): the write side's own answer, which the read tables may not have yet.
 */
async function findStoredMessage(
  connection: CommonQueryMethods,
  messageId: string,
): Promise<{ readonly conversationId: string; readonly message: StoredMessage } | null> {
  const row = await connection.maybeOne(sql.type(storedMessageRow)`
    SELECT stream_id, version, data ->> 'sender_id' AS sender_id FROM events
    WHERE type = 'MessageSent' AND data ->> 'message_id' = ${messageId}`);
  return row && { conversationId: row.stream_id, message: { id: messageId, version: row.version, senderId: row.sender_id } };
}

/** Erases the text of each message a `MessageDeleted` of the batch deletes, in the append's transaction. */
async function eraseDeletedMessages(transaction: DatabaseTransactionConnection, recorded: readonly RecordedEvent[]): Promise<void> {
  for (const event of recorded) {
    if (event.type !== 'MessageDeleted') continue;
    const { data } = messageDeleted.parse({ type: event.type, data: event.data });
    await eraseEventFields(transaction, {
      streamId: event.streamId,
      version: data.message_version,
      fields: ERASED_MESSAGE_FIELDS,
      erasedByEventId: event.eventId,
    });
  }
}

export type DeletedMessage = {
  readonly id: string;
  readonly conversationId: string;
  /** When the message was first deleted: a repeated delete answers the same. */
  readonly deletedAt: string;
  /** False when it was deleted already: nothing was appended. */
  readonly appended: boolean;
};

/** The same answer for a missing message, a stranger's, and one in a conversation blocked against the caller. */
const messageNotFound = (): DomainError => new DomainError('not_found', 'message not found');

/**
 * Deletes a message for everyone, for its sender: appends `MessageDeleted` and, in the same transaction,
 * erases the text of the original `MessageSent` in place (recorded in `event_erasures`; the relay then
 * deletes the original from the events stream). Deleting it again appends nothing and answers the first
 * delete's time.
 * @throws DomainError `forbidden` (the other participant), `not_found` (anyone else, a missing or malformed
 * id, or the user the conversation is blocked against).
 */
export async function deleteMessageForEveryone(
  deps: CommandDeps,
  input: { readonly messageId: string; readonly requesterId: number; readonly metadata?: Readonly<Record<string, unknown>> },
): Promise<DeletedMessage> {
  if (!ULID.test(input.messageId)) throw messageNotFound();
  const found = await findStoredMessage(deps.pool, input.messageId);
  if (!found) throw messageNotFound();
  try {
    const result = await handleCommand(
      deps.pool,
      conversationDecider,
      found.conversationId,
      { type: 'DeleteMessage', requesterId: input.requesterId, message: found.message, now: deps.clock() },
      { ...(input.metadata && { metadata: input.metadata }), withAppend: eraseDeletedMessages },
    );
    const at = deletedAt(result.state, input.messageId);
    if (at === null) throw new Error(`message ${input.messageId} is not deleted after its delete`);
    return { id: input.messageId, conversationId: found.conversationId, deletedAt: at, appended: result.recorded.length > 0 };
  } catch (error) {
    if (error instanceof DomainError && error.code === 'not_found') throw messageNotFound();
    throw error;
  }
}
