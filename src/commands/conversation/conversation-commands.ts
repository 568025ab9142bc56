import { sql, UniqueIntegrityConstraintViolationError, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { readStream } from '../../event-store/read-stream.js';
import { DomainError } from '../domain-error.js';
import { handleCommand } from '../handle-command.js';
import { conversationDecider } from './conversation.js';
import { messageSent } from './events.js';
import { assertValidClientMsgId } from './message-content.js';

export type CommandDeps = {
  readonly pool: DatabasePool;
  readonly clock: () => Date;
  /** ULID generator for conversation and message ids. */
  readonly newId: () => string;
};

/** How many times a command starts over after losing a uniqueness race to a concurrent one. */
const RESERVATION_ATTEMPTS = 3;

async function retryOnReservationConflict<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (error) {
      // The other transaction committed the same reservation first; the next lookup finds it.
      if (!(error instanceof UniqueIntegrityConstraintViolationError) || attempt >= RESERVATION_ATTEMPTS) throw error;
    }
  }
}

export type StartedConversation = {
  readonly conversationId: string;
  /** False when the pair already had a conversation, which is returned instead. */
  readonly created: boolean;
};

/**
 * Starts the one conversation between `initiatorId` and `otherUserId`, or returns the existing one, whichever
 * of the two started it and also when both start it at once.
 * @throws DomainError `self_conversation`.
 */
export async function startConversation(
  deps: CommandDeps,
  input: { readonly initiatorId: number; readonly otherUserId: number },
): Promise<StartedConversation> {
  const userLow = Math.min(input.initiatorId, input.otherUserId);
  const userHigh = Math.max(input.initiatorId, input.otherUserId);
  return retryOnReservationConflict(async () => {
    const existing = await deps.pool.maybeOneFirst(sql.type(z.object({ conversation_id: z.string() }))`
      SELECT conversation_id FROM conversation_pairs WHERE user_low = ${userLow} AND user_high = ${userHigh}`);
    if (existing) return { conversationId: existing, created: false };

    const conversationId = deps.newId();
    await handleCommand(
      deps.pool,
      conversationDecider,
      conversationId,
      { type: 'StartConversation', conversationId, ...input, now: deps.clock() },
      {
        reserve: async (transaction) => {
          await transaction.query(sql.unsafe`
            INSERT INTO conversation_pairs (user_low, user_high, conversation_id)
            VALUES (${userLow}, ${userHigh}, ${conversationId})`);
        },
      },
    );
    return { conversationId, created: true };
  });
}

export type SentMessage = {
  readonly id: string;
  readonly conversationId: string;
  readonly senderId: number;
  readonly content: string;
  readonly clientMsgId: string | null;
  readonly sentAt: string;
  /** The message's event version inside the conversation: its `seq`. */
  readonly version: number;
  /** False when `clientMsgId` had been used before: this is the original message, nothing was appended. */
  readonly created: boolean;
};

const clientIdRow = z.object({ conversation_id: z.string(), version: z.number().int() });

async function findByClientMsgId(
  deps: CommandDeps,
  input: { readonly conversationId: string; readonly senderId: number; readonly clientMsgId: string },
): Promise<SentMessage | null> {
  const row = await deps.pool.maybeOne(sql.type(clientIdRow)`
    SELECT conversation_id, version FROM message_client_ids
    WHERE sender_id = ${input.senderId} AND client_msg_id = ${input.clientMsgId}`);
  if (!row) return null;
  if (row.conversation_id !== input.conversationId) {
    throw new DomainError('client_msg_id_conflict', 'client_msg_id was already used for another conversation');
  }
  const [event] = await readStream(deps.pool, row.conversation_id, {
    afterVersion: row.version - 1,
    toVersion: row.version,
  });
  if (!event) throw new Error(`message of a reserved client_msg_id is missing at version ${row.version}`);
  const { data } = messageSent.parse({ type: event.type, data: event.data });
  return {
    id: data.message_id,
    conversationId: event.streamId,
    senderId: data.sender_id,
    content: data.content,
    clientMsgId: data.client_msg_id,
    sentAt: data.sent_at,
    version: event.version,
    created: false,
  };
}

/**
 * Appends a message from a participant. With a `clientMsgId` already used by this sender, returns the
 * original message and appends nothing (safe retries).
 * @throws DomainError `not_found` (missing conversation or not a participant), `blank_message`, `too_long`,
 * `invalid_characters`, `invalid_client_msg_id`, `client_msg_id_conflict`.
 */
export async function sendMessage(
  deps: CommandDeps,
  input: {
    readonly conversationId: string;
    readonly senderId: number;
    readonly content: string;
    readonly clientMsgId?: string | null;
  },
): Promise<SentMessage> {
  const clientMsgId = input.clientMsgId ?? null;
  // Checked before the idempotency lookup uses it; the content is the decider's to check.
  if (clientMsgId !== null) assertValidClientMsgId(clientMsgId);
  return retryOnReservationConflict(async () => {
    if (clientMsgId !== null) {
      const original = await findByClientMsgId(deps, { ...input, clientMsgId });
      if (original) return original;
    }
    const messageId = deps.newId();
    const result = await handleCommand(
      deps.pool,
      conversationDecider,
      input.conversationId,
      { type: 'SendMessage', senderId: input.senderId, messageId, content: input.content, clientMsgId, now: deps.clock() },
      {
        reserve: async (transaction, { firstVersion }) => {
          if (clientMsgId === null) return;
          await transaction.query(sql.unsafe`
            INSERT INTO message_client_ids (sender_id, client_msg_id, conversation_id, message_id, version)
            VALUES (${input.senderId}, ${clientMsgId}, ${input.conversationId}, ${messageId}, ${firstVersion})`);
        },
      },
    );
    const recorded = result.recorded[0];
    const event = result.events[0];
    if (!recorded || event?.type !== 'MessageSent') throw new Error('SendMessage appended no MessageSent');
    return {
      id: event.data.message_id,
      conversationId: input.conversationId,
      senderId: event.data.sender_id,
      content: event.data.content,
      clientMsgId,
      sentAt: event.data.sent_at,
      version: recorded.version,
      created: true,
    };
  });
}

export type ReadReceipt = {
  /** The version up to which the other participant's messages are now read; null when none were unread. */
  readonly upToVersion: number | null;
  readonly readAt: string | null;
  /** The version of the MessagesRead event appended; null when nothing was appended. */
  readonly version: number | null;
};

/**
 * Marks every message of the other participant read for `readerId`. Appends nothing when nothing is unread.
 * @throws DomainError `not_found`.
 */
export async function markConversationRead(
  deps: CommandDeps,
  input: { readonly conversationId: string; readerId: number },
): Promise<ReadReceipt> {
  const result = await handleCommand(deps.pool, conversationDecider, input.conversationId, {
    type: 'MarkConversationRead',
    readerId: input.readerId,
    now: deps.clock(),
  });
  const event = result.events[0];
  if (event?.type !== 'MessagesRead') return { upToVersion: null, readAt: null, version: null };
  return { upToVersion: event.data.up_to_version, readAt: event.data.read_at, version: result.version };
}
