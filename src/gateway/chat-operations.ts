import type { DatabasePool } from 'slonik';
import {
  blockConversation,
  markConversationRead,
  readForSends,
  retriedMessages,
  sendMessages,
  startConversation,
  unblockConversation,
  type CommandDeps,
  type AppendedMessage,
  type SendMessageInput,
  type SentMessage,
} from '../commands/conversation/conversation-commands.js';
import { currentBlocks } from '../commands/conversation/blocks.js';
import { deleteMessageForEveryone } from '../commands/conversation/delete-message.js';
import { assertValidMessageContent } from '../commands/conversation/message-content.js';
import { DomainError } from '../commands/domain-error.js';
import type { ParticipantDirectory } from '../delivery/participants.js';
import {
  getConversation,
  listConversations,
  listMessages,
  type Conversation,
  type ConversationPage,
  type Message,
  type MessagePage,
} from '../projections/conversation/queries.js';
import { awaitReadConsistency, type ReadScope } from '../projections/read-consistency.js';
import { traceMetadata, type RequestTrace } from '../event-store/event-metadata.js';
import { createBatcher } from '../shared/batcher.js';
import { hopClock, hopKey, type HopTimes } from '../shared/hop-times.js';
import type { Logger } from '../shared/logger.js';
import { GatewayError, notFound } from './errors.js';
import { isAllowance, type Allowance, type RateLimiter } from './rate-limit.js';

export type { Conversation, ConversationPage, Message, MessagePage };

const badConversationCursor = () => new GatewayError('invalid_input', '"before" is not one of your conversations');

export type ChatOperationsDeps = CommandDeps & {
  readonly pool: DatabasePool;
  /** Per-user limits, each across REST, WS and every gateway. */
  readonly limits: ChatLimits;
  /** How long a query waits for the read tables to reach the log before answering `read_model_behind`. */
  readonly readConsistencyTimeoutMs: number;
  /** From the write side: a conversation just created has participants before the projection shows it. */
  readonly participants: ParticipantDirectory;
  readonly logger: Logger;
  /** Sends from every socket and request are appended in shared transactions; see `createBatcher`. */
  readonly sendBatching: { readonly maxBatchSize: number; readonly maxConcurrentBatches: number };
  /** Called with the number of messages appended by a batch (idempotent retries not counted). */
  readonly onMessagesAccepted?: (count: number) => void;
  /** Called with the number of sends in each transaction as it starts. */
  readonly onSendBatch?: (size: number) => void;
  /**
   * Called with the messages a batch appended, right after its append committed and before any sender is
   * answered: the fast path (gateway.ts) publishes them to both participants' sockets from there.
   */
  readonly onMessagesAppended?: (messages: readonly AppendedMessage[]) => void;
  /** Benchmarks: when enabled, each appended message's receipt, batch start and commit (hop-times.ts). */
  readonly hopTimes?: HopTimes;
};

/** A send waiting for its batch; `receivedAt` is its `sendMessage` call when hop times are kept, else 0. */
type QueuedSend = { readonly input: SendMessageInput; readonly receivedAt: number };

export type ChatLimits = {
  /** Messages appended and deleted for everyone (retries, repeated deletes and refused ones cost nothing). */
  readonly messages: RateLimiter;
  /**
   * Changes to a conversation's existence for the other user: starts, blocks and unblocks (each pushes a
   * frame to them). One that changes nothing (the conversation already there, blocked, unblocked) costs nothing.
   */
  readonly conversations: RateLimiter;
  /** Marks read: REST `PUT .../read`, WS `read` and `join_conversation`. */
  readonly reads: RateLimiter;
  /** Lists of the user's conversations. */
  readonly lists: RateLimiter;
};

export type ReadReceiptAnswer = { readonly up_to_seq: number | null; readonly read_at: string | null };

export type DeletedMessageAnswer = { readonly id: string; readonly conv_id: string; readonly deleted_at: string };

/**
 * What a user can do, the same for REST and WebSocket; each call is made on behalf of `userId`. `trace` is the
 * request's (request-context.ts): the events a command appends record it, and the call's log lines carry it.
 */
export type ChatOperations = {
  /** @throws GatewayError `invalid_input` when `before` is not one of the user's conversations. */
  listConversations(userId: number, page?: ConversationPage, trace?: RequestTrace): Promise<Conversation[]>;
  /** @throws GatewayError `not_found` (missing, or `userId` is not a participant). */
  getConversation(userId: number, conversationId: string, trace?: RequestTrace): Promise<Conversation>;
  listMessages(userId: number, conversationId: string, page: MessagePage, trace?: RequestTrace): Promise<Message[]>;
  startConversation(userId: number, otherUserId: number, trace?: RequestTrace): Promise<{ conversation: Conversation; created: boolean }>;
  sendMessage(
    userId: number,
    input: { readonly conversationId: string; readonly content: string; readonly clientMsgId?: string | undefined },
    trace?: RequestTrace,
  ): Promise<{ message: Message; created: boolean }>;
  markRead(userId: number, conversationId: string, trace?: RequestTrace): Promise<ReadReceiptAnswer>;
  /**
   * Blocks the conversation against the other participant (idempotent); answers it as the caller now sees it.
   * @throws GatewayError `not_found` (also when the other participant blocked it), `rate_limited`.
   */
  block(userId: number, conversationId: string, trace?: RequestTrace): Promise<Conversation>;
  /** Lifts the caller's block (idempotent). @throws GatewayError `not_found`, `rate_limited`. */
  unblock(userId: number, conversationId: string, trace?: RequestTrace): Promise<Conversation>;
  /**
   * Deletes one of the user's messages for everyone; again: the same answer. Costs a unit of the messages
   * limit, given back when nothing was appended.
   * @throws DomainError `forbidden` (the other participant's message), `not_found`.
   */
  deleteMessage(userId: number, messageId: string, trace?: RequestTrace): Promise<DeletedMessageAnswer>;
  /**
   * The other participant, for ephemeral signals, unless the conversation is blocked now.
   * @throws GatewayError `not_found` (also for the blocked user); DomainError `blocked` for the blocker.
   */
  otherParticipant(userId: number, conversationId: string): Promise<number>;
};

/** Crockford base32, 26 characters: every conversation and message id is a ULID. */
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

/**
 * A conversation id that is not a ULID names no conversation: answered like a missing one, before it reaches
 * a query (where a NUL byte, say, would be a database error rather than a 404).
 */
function assertConversationId(conversationId: string): void {
  if (!ULID.test(conversationId)) throw notFound();
}

/**
 * Commands, then queries that are never stale: before reading, every query waits, bounded, until the read
 * tables have applied each of the caller's conversations in scope up to the log's head at the query's
 * arrival (`awaitReadConsistency`). So it reflects every change acknowledged before it, by anyone, and every
 * frame already sent to the caller. Past the bound it throws `read_model_behind` (503, Retry-After).
 */
export function createChatOperations(deps: ChatOperationsDeps): ChatOperations {
  const { pool, hopTimes } = deps;
  const loggerFor = (trace: RequestTrace | undefined): Logger => (trace ? deps.logger.child(traceMetadata(trace)) : deps.logger);

  /**
   * A batch of sends, however many sockets it came from, costs one Redis round trip for the rate limit and,
   * at the same time, the reads its append is decided on (`readForSends`: the `client_msg_id`s taken and the
   * conversations' states, two statements at once), then the append's one statement. So the way into the log
   * is two round trips long, not four. Only appended messages keep their unit of the budget: the others (an
   * idempotent retry, a 404, a refused content) are refunded in one more round trip. A sender over the limit
   * still gets the original of a message it already sent (a retry), from the same reads.
   */
  async function sendBatch(queued: readonly QueuedSend[]): Promise<PromiseSettledResult<SentMessage>[]> {
    const batchStartedAt = hopTimes?.enabled ? hopClock() : 0;
    const inputs = queued.map((send) => send.input);
    const [allowances, reads] = await Promise.all([
      deps.limits.messages.consumeEach(inputs.map((input) => input.senderId)),
      readForSends(deps, inputs),
    ]);
    const batchReadAt = hopTimes?.enabled ? hopClock() : 0;
    const allowedSends = queued.filter((_, index) => isAllowance(allowances[index]!));
    const allowed = allowedSends.map((send) => send.input);
    const sent = allowed.length > 0 ? await sendMessages(deps, allowed, reads) : [];
    if (hopTimes?.enabled) markSendHops(hopTimes, allowedSends, sent, { batchStartedAt, batchReadAt });
    if (deps.onMessagesAppended) {
      const appended = sent.flatMap((result) => (result.status === 'fulfilled' && result.value.appended ? [result.value.appended] : []));
      if (appended.length > 0) deps.onMessagesAppended(appended);
    }
    const refused = inputs.filter((_, index) => !isAllowance(allowances[index]!));
    const retries = refused.length > 0 ? retriedMessages(reads, sent, refused) : [];
    const appended = sent.filter((result) => result.status === 'fulfilled' && result.value.created).length;
    if (appended > 0) deps.onMessagesAccepted?.(appended);
    const refunds: Allowance[] = [];
    let nextSent = 0;
    let nextRefused = 0;
    const settled = allowances.map((allowance): PromiseSettledResult<SentMessage> => {
      if (isAllowance(allowance)) {
        const result = sent[nextSent++]!;
        if (result.status === 'rejected' || !result.value.created) refunds.push(allowance);
        return result;
      }
      const retry = retries[nextRefused++];
      return retry ? { status: 'fulfilled', value: retry } : { status: 'rejected', reason: allowance };
    });
    await deps.limits.messages.refund(refunds);
    return settled;
  }
  const sends = createBatcher<QueuedSend, SentMessage>({
    run: sendBatch,
    ...deps.sendBatching,
    ...(deps.onSendBatch && { onBatch: deps.onSendBatch }),
  });

  /** @returns false when the read tables did not reach the log's head for `scope` within the bound. */
  const caughtUp = (scope: ReadScope): Promise<boolean> =>
    awaitReadConsistency(pool, scope, { timeoutMs: deps.readConsistencyTimeoutMs });

  async function awaitConsistentRead(scope: ReadScope, trace: RequestTrace | undefined): Promise<void> {
    if (await caughtUp(scope)) return;
    loggerFor(trace).warn(scope, 'read tables still behind the event log at the deadline; answering read_model_behind');
    throw new GatewayError('read_model_behind', 'the read model is behind the event log; retry shortly', 1);
  }

  async function findConversation(userId: number, conversationId: string, trace?: RequestTrace): Promise<Conversation> {
    assertConversationId(conversationId);
    await awaitConsistentRead({ userId, conversationId }, trace);
    const conversation = await getConversation(pool, userId, conversationId);
    if (!conversation) throw notFound();
    return conversation;
  }

  /** A block or an unblock, then the conversation read back as any query reads it (after the consistency wait). */
  async function changeBlock(
    change: typeof blockConversation,
    userId: number,
    conversationId: string,
    trace: RequestTrace | undefined,
  ): Promise<Conversation> {
    assertConversationId(conversationId);
    const allowance = await deps.limits.conversations.consume(userId);
    let changed: boolean;
    try {
      ({ changed } = await change(deps, { conversationId, userId, metadata: traceMetadata(trace) }));
    } catch (error) {
      await deps.limits.conversations.refund([allowance]);
      throw error;
    }
    if (!changed) await deps.limits.conversations.refund([allowance]);
    return findConversation(userId, conversationId, trace);
  }

  return {
    async listConversations(userId, page, trace) {
      if (page?.before !== undefined && !ULID.test(page.before)) throw badConversationCursor();
      await deps.limits.lists.consume(userId);
      await awaitConsistentRead({ userId }, trace);
      const result = await listConversations(pool, userId, page);
      if (result === 'bad_cursor') throw badConversationCursor();
      return result;
    },

    getConversation: findConversation,

    async listMessages(userId, conversationId, page, trace) {
      assertConversationId(conversationId);
      if ('before' in page && !ULID.test(page.before)) {
        throw new GatewayError('invalid_input', '"before" is not a message of this conversation');
      }
      await awaitConsistentRead({ userId, conversationId }, trace);
      const result = await listMessages(pool, userId, conversationId, page);
      if (result === 'not_found') throw notFound();
      if (result === 'bad_cursor') throw new GatewayError('invalid_input', '"before" is not a message of this conversation');
      return result;
    },

    async startConversation(userId, otherUserId, trace) {
      const allowance = await deps.limits.conversations.consume(userId);
      let started: Awaited<ReturnType<typeof startConversation>>;
      try {
        started = await startConversation(deps, { initiatorId: userId, otherUserId, metadata: traceMetadata(trace) });
      } catch (error) {
        await deps.limits.conversations.refund([allowance]);
        throw error;
      }
      // Finding the conversation already there pushes no frame to anyone: it costs nothing.
      if (!started.created) await deps.limits.conversations.refund([allowance]);
      // A command, not a query: past the bound it answers with what it has rather than fail.
      if (!(await caughtUp({ userId, conversationId: started.conversationId }))) {
        loggerFor(trace).warn({ userId, conversationId: started.conversationId }, 'read tables behind; answering the start from what is at hand');
      }
      const conversation = await getConversation(pool, userId, started.conversationId);
      if (conversation) return { conversation, created: started.created };
      // Blocked against the caller since the command looked, or not projected at all yet: the log tells which.
      const blockedBy = (await currentBlocks(pool, [started.conversationId])).get(started.conversationId) ?? null;
      if (blockedBy !== null && blockedBy !== userId) throw notFound();
      const now = deps.clock().toISOString();
      return {
        conversation: {
          id: started.conversationId,
          user1_id: Math.min(userId, otherUserId),
          user2_id: Math.max(userId, otherUserId),
          last_message_content: null,
          last_message_at: null,
          created_at: now,
          updated_at: now,
          blocked_by: blockedBy,
          unread_count: 0,
        },
        created: started.created,
      };
    },

    async sendMessage(userId, input, trace) {
      // Malformed content is refused before it costs the sender any of its rate budget.
      assertConversationId(input.conversationId);
      assertValidMessageContent(input.content);
      const sent = await sends.submit({
        input: {
          conversationId: input.conversationId,
          senderId: userId,
          content: input.content,
          clientMsgId: input.clientMsgId ?? null,
          metadata: traceMetadata(trace),
        },
        receivedAt: hopTimes?.enabled ? hopClock() : 0,
      });
      return {
        message: {
          id: sent.id,
          conv_id: sent.conversationId,
          sender_id: sent.senderId,
          msg: sent.content,
          time: sent.sentAt,
          // A retry returns the message as it was sent; its read state is in GET .../messages.
          read_at: null,
          client_msg_id: sent.clientMsgId,
          seq: sent.version,
          // A retry of a message deleted for everyone since: its tombstone.
          deleted_at: sent.deletedAt,
        },
        created: sent.created,
      };
    },

    async markRead(userId, conversationId, trace) {
      assertConversationId(conversationId);
      await deps.limits.reads.consume(userId);
      const receipt = await markConversationRead(deps, { conversationId, readerId: userId, metadata: traceMetadata(trace) });
      return { up_to_seq: receipt.upToVersion, read_at: receipt.readAt };
    },

    block: (userId, conversationId, trace) => changeBlock(blockConversation, userId, conversationId, trace),

    unblock: (userId, conversationId, trace) => changeBlock(unblockConversation, userId, conversationId, trace),

    async deleteMessage(userId, messageId, trace) {
      const allowance = await deps.limits.messages.consume(userId);
      let deleted: Awaited<ReturnType<typeof deleteMessageForEveryone>>;
      try {
        deleted = await deleteMessageForEveryone(deps, { messageId, requesterId: userId, metadata: traceMetadata(trace) });
      } catch (error) {
        await deps.limits.messages.refund([allowance]);
        throw error;
      }
      if (!deleted.appended) await deps.limits.messages.refund([allowance]);
      return { id: deleted.id, conv_id: deleted.conversationId, deleted_at: deleted.deletedAt };
    },

    async otherParticipant(userId, conversationId) {
      assertConversationId(conversationId);
      const pair = await deps.participants.participantsOf(conversationId);
      const other = pair?.[0] === userId ? pair[1] : pair?.[1] === userId ? pair[0] : null;
      if (other === null) throw notFound();
      // A signal never crosses a block: the blocked user is answered as a stranger, the blocker is refused.
      const blockedBy = (await currentBlocks(pool, [conversationId])).get(conversationId) ?? null;
      if (blockedBy === other) throw notFound();
      if (blockedBy === userId) throw new DomainError('blocked', 'you blocked this conversation: unblock it first');
      return other;
    },
  };
}

/** Receipt, batch start, reads and commit of each message the batch appended (a retry of an old one appended nothing). */
function markSendHops(
  hopTimes: HopTimes,
  sends: readonly QueuedSend[],
  results: readonly PromiseSettledResult<SentMessage>[],
  batch: { readonly batchStartedAt: number; readonly batchReadAt: number },
): void {
  const committedAt = hopClock();
  results.forEach((result, index) => {
    const send = sends[index];
    if (result.status !== 'fulfilled' || !result.value.created || !send) return;
    const key = hopKey(result.value.conversationId, result.value.version);
    hopTimes.mark(key, 'gateway_received', send.receivedAt);
    hopTimes.mark(key, 'batch_started', batch.batchStartedAt);
    hopTimes.mark(key, 'batch_read', batch.batchReadAt);
    hopTimes.mark(key, 'committed', committedAt);
  });
}
