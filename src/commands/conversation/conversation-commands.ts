import type { DatabasePool } from 'slonik';
import type { FeedPosition, RecordedEvent } from '../../event-store/recorded-event.js';
import { DomainError } from '../domain-error.js';
import {
  attemptCommands,
  handleCommand,
  loadStreams,
  retryOnConflict,
  type AttemptMode,
  type CommandResult,
  type LoadedStream,
} from '../handle-command.js';
import { currentBlocks } from './blocks.js';
import { conversationDecider, type ConversationState } from './conversation.js';
import type { ConversationEvent } from './events.js';
import {
  clientIdKey,
  clientIdReservations,
  conversationOfPair,
  findByClientIds,
  pairReservation,
  userPairOf,
  type OriginalMessage,
} from './reservations.js';
import { clientIdsToLookUp, planSends } from './send-plan.js';

/** What a command records on its events besides their data (the request's trace: event-metadata.ts). */
type EventMetadata = Readonly<Record<string, unknown>>;

export type CommandDeps = {
  readonly pool: DatabasePool;
  readonly clock: () => Date;
  /** ULID generator for conversation and message ids. */
  readonly newId: () => string;
};

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
  const pair = userPairOf(input.initiatorId, input.otherUserId);
  return retryOnConflict('optimistic', async (mode) => {
    const existing = await conversationOfPair(deps.pool, pair);
    if (existing) {
      const blockedBy = (await currentBlocks(deps.pool, [existing])).get(existing) ?? null;
      if (blockedBy !== null && blockedBy !== input.initiatorId) throw new DomainError('not_found', 'conversation not found');
      return { conversationId: existing, created: false };
    }
    const conversationId = deps.newId();
    const command = { type: 'StartConversation' as const, conversationId, initiatorId: input.initiatorId, otherUserId: input.otherUserId, now: deps.clock() };
    const request = { streamId: conversationId, command, ...(input.metadata && { metadata: input.metadata }) };
    // A concurrent start of the same pair that commits first makes this attempt a reservation conflict: the
    // next one finds its conversation.
    const [result] = await attemptCommands(deps.pool, conversationDecider, [request], { reservations: () => [pairReservation(pair, conversationId)] }, mode);
    if (result?.status !== 'fulfilled') throw result?.reason;
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
  /** The `MessageSent` as stored and the conversation's two participants, when this send appended it; else null. */
  readonly appended: AppendedMessage | null;
};

/** A message just committed to the log: what the sender's gateway needs to send it on the fast path. */
export type AppendedMessage = {
  readonly event: RecordedEvent;
  readonly participants: readonly [number, number];
  /** Where the conversation's event before this one is in the feed (null: unknown). */
  readonly previous: FeedPosition | null;
};

export type SendMessageInput = {
  readonly conversationId: string;
  readonly senderId: number;
  readonly content: string;
  readonly clientMsgId?: string | null;
  /** Recorded on the MessageSent event (event-metadata.ts). */
  readonly metadata?: EventMetadata;
};

/** A retry's answer: the message first sent with its `client_msg_id`. */
const retriedMessage = (original: OriginalMessage): SentMessage => ({ ...original, created: false, appended: null });

type SendOutcome = PromiseSettledResult<SentMessage>;

/**
 * What a round of sends reads before it decides: the messages that already took the sends' `client_msg_id`s
 * and, for an optimistic attempt, the conversations' states (`null` for a locked one, which reads them under
 * its locks). Committed data, stale by the time it is used: the append's version check and reservations catch
 * what changed in between, and the attempt is retried.
 */
export type SendReads = {
  readonly taken: ReadonlyMap<string, OriginalMessage>;
  readonly streams: ReadonlyMap<string, LoadedStream<ConversationState>> | null;
};

/** The reads of `SendReads` for these sends, as two statements at once (on two of the pool's connections). */
export async function readForSends(deps: CommandDeps, inputs: readonly SendMessageInput[], mode: AttemptMode = 'optimistic'): Promise<SendReads> {
  const [taken, streams] = await Promise.all([
    findByClientIds(deps.pool, clientIdsToLookUp(inputs)),
    mode === 'optimistic' ? loadStreams(deps.pool, conversationDecider, inputs.map((input) => input.conversationId)) : null,
  ]);
  return { taken, streams };
}

/**
 * For each input, the message already sent with its sender's client_msg_id to the same conversation (an
 * idempotent retry), else null: among the messages `reads` found taken, and those `sent` since (a send of the
 * same batch that took the id). What a sender over its rate limit still gets; nothing read or appended.
 */
export function retriedMessages(reads: SendReads, sent: readonly SendOutcome[], inputs: readonly SendMessageInput[]): (SentMessage | null)[] {
  const taken = new Map(reads.taken);
  for (const outcome of sent) {
    if (outcome.status !== 'fulfilled' || outcome.value.clientMsgId === null) continue;
    const { id, conversationId, senderId, content, deletedAt, clientMsgId, sentAt, version } = outcome.value;
    taken.set(clientIdKey({ senderId, clientMsgId }), { id, conversationId, senderId, content, deletedAt, clientMsgId, sentAt, version });
  }
  return inputs.map((input) => {
    const original = input.clientMsgId ? taken.get(clientIdKey({ senderId: input.senderId, clientMsgId: input.clientMsgId })) : undefined;
    return original?.conversationId === input.conversationId ? retriedMessage(original) : null;
  });
}

const rejected = (reason: unknown): PromiseRejectedResult => ({ status: 'rejected', reason });

/**
 * One attempt of a round of `sendMessages`: its reads (`reads`, made by the caller moments ago, or made now),
 * the sends planned (send-plan.ts), and those to append decided and appended with their reservations (one
 * statement).
 * @returns each send's outcome, or `later` for a repeat of an id an earlier send of the round takes.
 * @throws the conflicts of `attemptCommands`, with nothing written.
 */
async function sendRound(
  deps: CommandDeps,
  inputs: readonly SendMessageInput[],
  mode: AttemptMode,
  reads: SendReads | null,
): Promise<(SendOutcome | 'later')[]> {
  const { taken, streams } = reads ?? (await readForSends(deps, inputs, mode));
  const plan = planSends(inputs, taken);
  const appending = inputs.filter((_, index) => plan[index]?.kind === 'append');
  const commands = appending.map((input) => ({
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
  }));
  const results = await attemptCommands(
    deps.pool,
    conversationDecider,
    commands,
    {
      ...(streams && { loaded: streams }),
      reservations: (decided) =>
        clientIdReservations(
          decided.flatMap(({ command, streamId, firstVersion }) =>
            command.type === 'SendMessage' && command.clientMsgId !== null
              ? [{ senderId: command.senderId, clientMsgId: command.clientMsgId, conversationId: streamId, messageId: command.messageId, version: firstVersion }]
              : [],
          ),
        ),
    },
    mode,
  );
  let next = 0;
  return plan.map((planned, index): SendOutcome | 'later' => {
    switch (planned.kind) {
      case 'refused':
        return rejected(planned.error);
      case 'retry':
        return { status: 'fulfilled', value: retriedMessage(planned.original) };
      case 'later':
        return 'later';
      case 'append':
        return appendedOutcome(results[next++], inputs[index]!);
      default: {
        const unknown: never = planned;
        throw new Error(`unknown plan ${String(unknown)}`);
      }
    }
  });
}

type AppendResult = PromiseSettledResult<CommandResult<ConversationEvent, ConversationState>>;

/** The outcome of a send that was decided: refused by the decider, or its message as appended. */
function appendedOutcome(result: AppendResult | undefined, input: SendMessageInput): SendOutcome {
  if (!result) throw new Error('a send planned for the append has no result');
  if (result.status === 'rejected') return result;
  const recorded = result.value.recorded[0];
  const event = result.value.events[0];
  const { state } = result.value;
  if (!recorded || event?.type !== 'MessageSent' || state.status !== 'Active') throw new Error('SendMessage appended no MessageSent');
  return {
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
      appended: { event: recorded, participants: [state.user1.id, state.user2.id], previous: result.value.previous },
    },
  };
}

/**
 * Appends a message from a participant. With a `clientMsgId` already used by this sender, returns the
 * original message and appends nothing (safe retries).
 * @throws DomainError `not_found` (missing conversation or not a participant), `blank_message`, `too_long`,
 * `invalid_characters`, `invalid_client_msg_id`, `client_msg_id_conflict`.
 */
export async function sendMessage(deps: CommandDeps, input: SendMessageInput): Promise<SentMessage> {
  const [result] = await sendMessages(deps, [input]);
  if (result?.status !== 'fulfilled') throw result?.reason;
  return result.value;
}

/**
 * Sends many messages, from any senders to any conversations, in one statement (one commit for all of them:
 * what lets a gateway keep up with many sockets). Each message is settled on its own, as `sendMessage` would
 * settle it; messages to one conversation get consecutive versions in the order given. Conflicts with other
 * transactions are retried (`retryOnConflict`): a reservation another one took first is found by the next
 * attempt's lookup. A repeat of a `client_msg_id` inside the batch is sent in a next round, after the first.
 * `reads`, when given, are `readForSends` of these inputs or more, made by the caller alongside its own work:
 * the first attempt uses them, any next one reads again.
 */
export async function sendMessages(deps: CommandDeps, inputs: readonly SendMessageInput[], reads?: SendReads): Promise<SendOutcome[]> {
  if (inputs.length === 0) return [];
  const round = await retryOnConflict('optimistic', (mode, attempt) => sendRound(deps, inputs, mode, attempt === 1 ? (reads ?? null) : null));
  const later = await sendMessages(
    deps,
    inputs.filter((_, index) => round[index] === 'later'),
  );
  let next = 0;
  return round.map((outcome) => (outcome === 'later' ? later[next++]! : outcome));
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
