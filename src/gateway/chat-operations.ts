import type { DatabasePool } from 'slonik';
import {
  markConversationRead,
  sendMessages,
  startConversation,
  type CommandDeps,
  type SendMessageInput,
  type SentMessage,
} from '../commands/conversation/conversation-commands.js';
import { assertValidMessageContent } from '../commands/conversation/message-content.js';
import type { ParticipantDirectory } from '../delivery/participants.js';
import {
  getConversation,
  listConversations,
  listMessages,
  type Conversation,
  type Message,
  type MessagePage,
} from '../projections/conversation/queries.js';
import { waitForProjection, type WriteWatermark, type WriteWatermarks } from '../projections/read-your-writes.js';
import { createBatcher } from '../shared/batcher.js';
import type { Logger } from '../shared/logger.js';
import { GatewayError, notFound } from './errors.js';
import type { RateLimiter } from './rate-limit.js';

export type { Conversation, Message, MessagePage };

export type ChatOperationsDeps = CommandDeps & {
  readonly pool: DatabasePool;
  readonly watermarks: WriteWatermarks;
  readonly rateLimiter: RateLimiter;
  readonly readYourWritesTimeoutMs: number;
  /** From the write side: a conversation just created has participants before the projection shows it. */
  readonly participants: ParticipantDirectory;
  readonly logger: Logger;
  /** Sends from every socket and request are appended in shared transactions; see `createBatcher`. */
  readonly sendBatching: { readonly maxBatchSize: number; readonly maxConcurrentBatches: number };
  /** Called with the number of messages appended by a batch (idempotent retries not counted). */
  readonly onMessagesAccepted?: (count: number) => void;
  /** Called with the number of sends in each transaction as it starts. */
  readonly onSendBatch?: (size: number) => void;
};

export type ReadReceiptAnswer = { readonly up_to_seq: number | null; readonly read_at: string | null };

/** What a user can do, the same for REST and WebSocket; each call is made on behalf of `userId`. */
export type ChatOperations = {
  listConversations(userId: number): Promise<Conversation[]>;
  /** @throws GatewayError `not_found` (missing, or `userId` is not a participant). */
  getConversation(userId: number, conversationId: string): Promise<Conversation>;
  listMessages(userId: number, conversationId: string, page: MessagePage): Promise<Message[]>;
  startConversation(userId: number, otherUserId: number): Promise<{ conversation: Conversation; created: boolean }>;
  sendMessage(
    userId: number,
    input: { readonly conversationId: string; readonly content: string; readonly clientMsgId?: string | undefined },
  ): Promise<{ message: Message; created: boolean }>;
  markRead(userId: number, conversationId: string): Promise<ReadReceiptAnswer>;
  /** The other participant, for ephemeral signals. @throws GatewayError `not_found`. */
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
 * Commands then queries with read-your-writes: every command that changed a conversation records the
 * version it wrote (Redis, so it holds across gateways), and every query of that user first waits, bounded,
 * until the projection has applied it. Past the bound the query answers with what it has rather than fail.
 */
export function createChatOperations(deps: ChatOperationsDeps): ChatOperations {
  const { pool, logger } = deps;

  async function recordWrites(writes: readonly WriteWatermark[]): Promise<void> {
    try {
      await deps.watermarks.recordEach(writes);
    } catch (error) {
      // The writes are committed and answered; only the next reads' freshness is at stake.
      logger.warn({ err: error, users: writes.map((write) => write.userId) }, 'could not record write watermarks');
    }
  }
  const recordWrite = (userId: number, conversationId: string, version: number) =>
    recordWrites([{ userId, conversationId, version }]);

  /**
   * A batch of sends costs one Redis round trip for the rate limit, one transaction, and one Redis round trip
   * for the watermarks, however many sockets it came from.
   */
  async function sendBatch(inputs: readonly SendMessageInput[]): Promise<PromiseSettledResult<SentMessage>[]> {
    const refusals = await deps.rateLimiter.consumeEach(inputs.map((input) => input.senderId));
    const allowed = inputs.filter((_, index) => refusals[index] === null);
    const sent = allowed.length > 0 ? await sendMessages(deps, allowed) : [];
    const appended = sent.flatMap((result) => (result.status === 'fulfilled' && result.value.created ? [result.value] : []));
    if (appended.length > 0) deps.onMessagesAccepted?.(appended.length);
    await recordWrites(appended.map((message) => ({ userId: message.senderId, conversationId: message.conversationId, version: message.version })));
    let next = 0;
    return refusals.map((refusal) => (refusal ? { status: 'rejected', reason: refusal } : sent[next++]!));
  }
  const sends = createBatcher<SendMessageInput, SentMessage>({
    run: sendBatch,
    ...deps.sendBatching,
    ...(deps.onSendBatch && { onBatch: deps.onSendBatch }),
  });

  async function awaitOwnWrites(userId: number, onlyConversation?: string): Promise<void> {
    let pending: Map<string, number>;
    try {
      pending = await deps.watermarks.pending(userId);
    } catch (error) {
      logger.warn({ err: error, userId }, 'could not read write watermarks');
      return;
    }
    if (onlyConversation !== undefined) {
      const version = pending.get(onlyConversation);
      pending = new Map(version === undefined ? [] : [[onlyConversation, version]]);
    }
    const caughtUp = await waitForProjection(pool, pending, { timeoutMs: deps.readYourWritesTimeoutMs });
    if (!caughtUp) logger.warn({ userId }, 'projection still behind this user\'s writes; answering with what it has');
  }

  async function findConversation(userId: number, conversationId: string): Promise<Conversation> {
    assertConversationId(conversationId);
    await awaitOwnWrites(userId, conversationId);
    const conversation = await getConversation(pool, userId, conversationId);
    if (!conversation) throw notFound();
    return conversation;
  }

  return {
    async listConversations(userId) {
      await awaitOwnWrites(userId);
      return listConversations(pool, userId);
    },

    getConversation: findConversation,

    async listMessages(userId, conversationId, page) {
      assertConversationId(conversationId);
      if ('before' in page && !ULID.test(page.before)) {
        throw new GatewayError('invalid_input', '"before" is not a message of this conversation');
      }
      await awaitOwnWrites(userId, conversationId);
      const result = await listMessages(pool, userId, conversationId, page);
      if (result === 'not_found') throw notFound();
      if (result === 'bad_cursor') throw new GatewayError('invalid_input', '"before" is not a message of this conversation');
      return result;
    },

    async startConversation(userId, otherUserId) {
      const started = await startConversation(deps, { initiatorId: userId, otherUserId });
      // ConversationStarted is version 1 of the stream, whichever of the two users started it.
      await recordWrite(userId, started.conversationId, 1);
      await awaitOwnWrites(userId, started.conversationId);
      const conversation = await getConversation(pool, userId, started.conversationId);
      if (conversation) return { conversation, created: started.created };
      // The projection is past the read-your-writes bound: answer from what the command knows.
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
          unread_count: 0,
        },
        created: started.created,
      };
    },

    async sendMessage(userId, input) {
      // Malformed content is refused before it costs the sender any of its rate budget.
      assertConversationId(input.conversationId);
      assertValidMessageContent(input.content);
      const sent = await sends.submit({
        conversationId: input.conversationId,
        senderId: userId,
        content: input.content,
        clientMsgId: input.clientMsgId ?? null,
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
        },
        created: sent.created,
      };
    },

    async markRead(userId, conversationId) {
      assertConversationId(conversationId);
      const receipt = await markConversationRead(deps, { conversationId, readerId: userId });
      if (receipt.version !== null) await recordWrite(userId, conversationId, receipt.version);
      return { up_to_seq: receipt.upToVersion, read_at: receipt.readAt };
    },

    async otherParticipant(userId, conversationId) {
      assertConversationId(conversationId);
      const pair = await deps.participants.participantsOf(conversationId);
      if (pair?.[0] === userId) return pair[1];
      if (pair?.[1] === userId) return pair[0];
      throw notFound();
    },
  };
}
