import { sql, UniqueIntegrityConstraintViolationError, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { DomainError } from '../domain-error.js';
import { handleCommand, handleCommands } from '../handle-command.js';
import { currentBlocks } from './blocks.js';
import { conversationDecider } from './conversation.js';
import { messageSent } from './events.js';
import { assertValidClientMsgId } from './message-content.js';

/** What a command records on its events besides their data (the request's trace: event-metadata.ts). */
type EventMetadata = Readonly<Record<string, unknown>>;

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
 * of the two started it and also when both start it at once. An existing conversation the other user blocked
 * does not exist for the initiator: `not_found`, like any command on it (the blocker gets it back as it is).
 * @throws DomainError `self_conversation`, `not_found`.
 */
export async function startConversation(
  deps: CommandDeps,
  input: { readonly initiatorId: number; readonly otherUserId: number; readonly metadata?: EventMetadata },
): Promise<StartedConversation> {
  const userLow = Math.min(input.initiatorId, input.otherUserId);
  const userHigh = Math.max(input.initiatorId, input.otherUserId);
  return retryOnReservationConflict(async () => {
    const existing = await deps.pool.maybeOneFirst(sql.type(z.object({ conversation_id: z.string() }))`
      SELECT conversation_id FROM conversation_pairs WHERE user_low = ${userLow} AND user_high = ${userHigh}`);
    if (existing) {
      const blockedBy = (await currentBlocks(deps.pool, [existing])).get(existing) ?? null;
      if (blockedBy !== null && blockedBy !== input.initiatorId) throw new DomainError('not_found', 'conversation not found');
      return { conversationId: existing, created: false };
    }

    const conversationId = deps.newId();
    await handleCommand(
      deps.pool,
      conversationDecider,
      conversationId,
      { type: 'StartConversation', conversationId, initiatorId: input.initiatorId, otherUserId: input.otherUserId, now: deps.clock() },
      {
        ...(input.metadata && { metadata: input.metadata }),
        reservations: () => [
          {
            table: 'conversation_pairs',
            columns: ['user_low', 'user_high', 'conversation_id'],
            types: ['int8', 'int8', 'text'],
            rows: [[userLow, userHigh, conversationId]],
          },
        ],
      },
    );
    return { conversationId, created: true };
  });
}

export type SentMessage = {
  readonly id: string;
  readonly conversationId: string;
  readonly senderId: number;
  /** Null when the message was deleted for everyone (a retry of it finds its text erased). */
  readonly content: string | null;
  /** When it was deleted for everyone; null when it was not. */
  readonly deletedAt: string | null;
  readonly clientMsgId: string | null;
  readonly sentAt: string;
  /** The message's event version inside the conversation: its `seq`. */
  readonly version: number;
  /** False when `clientMsgId` had been used before: this is the original message, nothing was appended. */
  readonly created: boolean;
};

export type SendMessageInput = {
  readonly conversationId: string;
  readonly senderId: number;
  readonly content: string;
  readonly clientMsgId?: string | null;
  /** Recorded on the MessageSent event (event-metadata.ts). */
  readonly metadata?: EventMetadata;
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

const clientIdKey = (senderId: number, clientMsgId: string) => `${senderId}\u0000${clientMsgId}`;

/** The messages first sent with these (sender, client_msg_id) pairs, by `clientIdKey`; one statement. */
async function findByClientMsgIds(
  deps: CommandDeps,
  keys: readonly { readonly senderId: number; readonly clientMsgId: string }[],
): Promise<Map<string, SentMessage>> {
  const rows = await deps.pool.any(sql.type(originalMessageRow)`
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
      const original: SentMessage = {
        id: data.message_id,
        conversationId: row.conversation_id,
        senderId: data.sender_id,
        content: data.content,
        deletedAt: row.deleted_at,
        clientMsgId: data.client_msg_id,
        sentAt: data.sent_at,
        version: row.version,
        created: false,
      };
      return [clientIdKey(row.sender_id, row.client_msg_id), original];
    }),
  );
}

/**
 * For each input, the message already sent with its sender's client_msg_id to the same conversation (an
 * idempotent retry), else null; one statement, nothing appended. What a sender over its rate limit still gets.
 */
export async function findRetriedMessages(deps: CommandDeps, inputs: readonly SendMessageInput[]): Promise<(SentMessage | null)[]> {
  const keys = inputs.flatMap((input) => (input.clientMsgId ? [{ senderId: input.senderId, clientMsgId: input.clientMsgId }] : []));
  if (keys.length === 0) return inputs.map(() => null);
  const originals = await findByClientMsgIds(deps, keys);
  return inputs.map((input) => {
    const original = input.clientMsgId ? originals.get(clientIdKey(input.senderId, input.clientMsgId)) : undefined;
    return original?.conversationId === input.conversationId ? original : null;
  });
}

const rejected = (reason: unknown): PromiseRejectedResult => ({ status: 'rejected', reason });

/**
 * The batch behind `sendMessages`, in one transaction: retries of a known client_msg_id are answered from
 * the log (one lookup for the batch), the others are decided and appended with their client_msg_id
 * reservations. A reservation taken meanwhile by another transaction, or twice in this batch, fails the
 * whole batch with a unique violation.
 */
async function sendBatch(deps: CommandDeps, inputs: readonly SendMessageInput[]): Promise<PromiseSettledResult<SentMessage>[]> {
  const settled: (PromiseSettledResult<SentMessage> | undefined)[] = inputs.map((input) => {
    if (input.clientMsgId === undefined || input.clientMsgId === null) return undefined;
    // Checked before the idempotency lookup uses it; the content is the decider's to check.
    try {
      assertValidClientMsgId(input.clientMsgId);
      return undefined;
    } catch (error) {
      return rejected(error);
    }
  });

  const retried = inputs.flatMap((input, index) =>
    settled[index] === undefined && input.clientMsgId ? [{ index, senderId: input.senderId, clientMsgId: input.clientMsgId }] : [],
  );
  if (retried.length > 0) {
    const originals = await findByClientMsgIds(deps, retried);
    for (const { index, senderId, clientMsgId } of retried) {
      const original = originals.get(clientIdKey(senderId, clientMsgId));
      if (!original) continue;
      settled[index] =
        original.conversationId === inputs[index]!.conversationId
          ? { status: 'fulfilled', value: original }
          : rejected(new DomainError('client_msg_id_conflict', 'client_msg_id was already used for another conversation'));
    }
  }

  const toAppend = inputs.flatMap((input, index) => (settled[index] === undefined ? [{ index, input }] : []));
  const results = await handleCommands(
    deps.pool,
    conversationDecider,
    toAppend.map(({ input }) => ({
      streamId: input.conversationId,
      ...(input.metadata && { metadata: input.metadata }),
      command: {
        type: 'SendMessage' as const,
        senderId: input.senderId,
        messageId: deps.newId(),
        content: input.content,
        clientMsgId: input.clientMsgId ?? null,
        now: deps.clock(),
      },
    })),
    {
      reservations: (decided) => {
        const rows = decided.flatMap(({ command, streamId, firstVersion }) =>
          command.clientMsgId !== null ? [[command.senderId, command.clientMsgId, streamId, command.messageId, firstVersion]] : [],
        );
        if (rows.length === 0) return [];
        const columns = ['sender_id', 'client_msg_id', 'conversation_id', 'message_id', 'version'];
        return [{ table: 'message_client_ids', columns, types: ['int8', 'text', 'text', 'text', 'int4'], rows }];
      },
    },
  );
  toAppend.forEach(({ index, input }, position) => {
    const result = results[position]!;
    if (result.status === 'rejected') {
      settled[index] = result;
      return;
    }
    const recorded = result.value.recorded[0];
    const event = result.value.events[0];
    if (!recorded || event?.type !== 'MessageSent') throw new Error('SendMessage appended no MessageSent');
    settled[index] = {
      status: 'fulfilled',
      value: {
        id: event.data.message_id,
        conversationId: input.conversationId,
        senderId: event.data.sender_id,
        content: event.data.content,
        deletedAt: null,
        clientMsgId: event.data.client_msg_id,
        sentAt: event.data.sent_at,
        version: recorded.version,
        created: true,
      },
    };
  });
  return settled.map((result) => result ?? rejected(new Error('send left unsettled')));
}

/**
 * Appends a message from a participant. With a `clientMsgId` already used by this sender, returns the
 * original message and appends nothing (safe retries).
 * @throws DomainError `not_found` (missing conversation or not a participant), `blank_message`, `too_long`,
 * `invalid_characters`, `invalid_client_msg_id`, `client_msg_id_conflict`.
 */
export async function sendMessage(deps: CommandDeps, input: SendMessageInput): Promise<SentMessage> {
  return retryOnReservationConflict(async () => {
    const [result] = await sendBatch(deps, [input]);
    if (result?.status !== 'fulfilled') throw result?.reason;
    return result.value;
  });
}

/**
 * Sends many messages, from any senders to any conversations, in one transaction (one commit for all of
 * them: what lets a gateway keep up with many sockets). Each message is settled on its own, as `sendMessage`
 * would settle it; messages to one conversation get consecutive versions in the order given. When a
 * client_msg_id reservation races (another gateway, or the same id twice in the batch), the batch is rolled
 * back and every message is sent on its own instead.
 */
export async function sendMessages(
  deps: CommandDeps,
  inputs: readonly SendMessageInput[],
): Promise<PromiseSettledResult<SentMessage>[]> {
  try {
    return await sendBatch(deps, inputs);
  } catch (error) {
    if (!(error instanceof UniqueIntegrityConstraintViolationError)) throw error;
    return Promise.allSettled(inputs.map((input) => sendMessage(deps, input)));
  }
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
  input: { readonly conversationId: string; readonly readerId: number; readonly metadata?: EventMetadata },
): Promise<ReadReceipt> {
  const result = await handleCommand(
    deps.pool,
    conversationDecider,
    input.conversationId,
    { type: 'MarkConversationRead', readerId: input.readerId, now: deps.clock() },
    input.metadata && { metadata: input.metadata },
  );
  const event = result.events[0];
  if (event?.type !== 'MessagesRead') return { upToVersion: null, readAt: null, version: null };
  return { upToVersion: event.data.up_to_version, readAt: event.data.read_at, version: result.version };
}

export type BlockChange = {
  /** False when the conversation already was in the state asked for: nothing was appended. */
  readonly changed: boolean;
  /** The stream version after the command: the block's (or unblock's) own when `changed`. */
  readonly version: number;
};

export type BlockInput = { readonly conversationId: string; readonly userId: number; readonly metadata?: EventMetadata };

async function changeBlock(deps: CommandDeps, type: 'BlockConversation' | 'UnblockConversation', input: BlockInput): Promise<BlockChange> {
  const result = await handleCommand(
    deps.pool,
    conversationDecider,
    input.conversationId,
    { type, userId: input.userId, now: deps.clock() },
    input.metadata && { metadata: input.metadata },
  );
  return { changed: result.events.length > 0, version: result.version };
}

/**
 * Blocks the conversation for `userId`'s partner (an unmatch): for them it no longer exists, and `userId`
 * can no longer send to it. Blocking again changes nothing.
 * @throws DomainError `not_found` (missing, not a participant, or blocked by the other participant).
 */
export const blockConversation = (deps: CommandDeps, input: BlockInput): Promise<BlockChange> =>
  changeBlock(deps, 'BlockConversation', input);

/**
 * Lifts `userId`'s block. Unblocking a conversation that is not blocked changes nothing.
 * @throws DomainError `not_found` (missing, not a participant, or blocked by the other participant).
 */
export const unblockConversation = (deps: CommandDeps, input: BlockInput): Promise<BlockChange> =>
  changeBlock(deps, 'UnblockConversation', input);
