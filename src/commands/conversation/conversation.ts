import { z } from 'zod';
import type { Decider } from '../decider.js';
import { DomainError } from '../domain-error.js';
import {
  CONVERSATION_STREAM_TYPE,
  conversationEvent,
  type ConversationBlocked,
  type ConversationEvent,
  type ConversationStarted,
  type ConversationUnblocked,
  type MessageDeleted,
  type MessageSent,
  type MessagesRead,
} from './events.js';
import { assertValidMessageContent } from './message-content.js';

//// Commands (the clock and the ids come in with the command, so `decide` stays pure)

export type StartConversation = {
  readonly type: 'StartConversation';
  readonly conversationId: string;
  readonly initiatorId: number;
  readonly otherUserId: number;
  readonly now: Date;
};

export type SendMessage = {
  readonly type: 'SendMessage';
  readonly senderId: number;
  readonly messageId: string;
  readonly content: string;
  readonly clientMsgId: string | null;
  readonly now: Date;
};

export type MarkConversationRead = {
  readonly type: 'MarkConversationRead';
  readonly readerId: number;
  readonly now: Date;
};

/** An unmatch: the conversation vanishes for the other participant until `UnblockConversation`. */
export type BlockConversation = {
  readonly type: 'BlockConversation';
  readonly userId: number;
  readonly now: Date;
};

export type UnblockConversation = {
  readonly type: 'UnblockConversation';
  readonly userId: number;
  readonly now: Date;
};

/** A message of this conversation as the log has it: what a delete is decided on. */
export type StoredMessage = { readonly id: string; readonly version: number; readonly senderId: number };

export type DeleteMessage = {
  readonly type: 'DeleteMessage';
  readonly requesterId: number;
  /** The message to delete, read from this conversation's log; null when it has no such message. */
  readonly message: StoredMessage | null;
  readonly now: Date;
};

export type ConversationCommand =
  | StartConversation
  | SendMessage
  | MarkConversationRead
  | BlockConversation
  | UnblockConversation
  | DeleteMessage;

//// State

const participant = z.object({
  id: z.number().int(),
  /** Version of the last message this participant sent; 0 when none. */
  lastSentVersion: z.number().int(),
  /** Every message of the other participant up to this version has been read by this participant. */
  readUpTo: z.number().int(),
});

const activeState = z.object({
  status: z.literal('Active'),
  conversationId: z.string(),
  /** Number of events folded, i.e. the stream version. */
  version: z.number().int(),
  user1: participant,
  user2: participant,
  /** The participant who blocked the conversation; null when it is not blocked. */
  blockedBy: z.number().int().nullable(),
  /** When each deleted message was deleted, by message id (deletes are rare: this stays small). */
  deleted: z.record(z.string(), z.string()),
});

export type Participant = z.infer<typeof participant>;
export type ConversationState = { readonly status: 'Empty' } | z.infer<typeof activeState>;

export const initialState = (): ConversationState => ({ status: 'Empty' });

export function isParticipant(state: ConversationState, userId: number): boolean {
  return state.status === 'Active' && (state.user1.id === userId || state.user2.id === userId);
}

/**
 * Whether the conversation exists for `userId`: a participant, and not the one it was blocked against (for
 * the blocked user a blocked conversation does not exist at all).
 */
export function isVisibleTo(state: ConversationState, userId: number): boolean {
  return isParticipant(state, userId) && (state.status !== 'Active' || state.blockedBy === null || state.blockedBy === userId);
}

/** When the message was deleted for everyone, or null when it was not. */
export function deletedAt(state: ConversationState, messageId: string): string | null {
  return state.status === 'Active' ? (state.deleted[messageId] ?? null) : null;
}

//// Decisions

function notFound(): DomainError {
  // The same answer for a missing conversation and for one the caller is not part of.
  return new DomainError('not_found', 'conversation not found');
}

function startConversation(command: StartConversation, state: ConversationState): ConversationStarted[] {
  if (state.status !== 'Empty') throw new DomainError('conversation_exists', 'conversation already started');
  if (command.initiatorId === command.otherUserId) {
    throw new DomainError('self_conversation', 'cannot start a conversation with yourself');
  }
  return [
    {
      type: 'ConversationStarted',
      data: {
        conversation_id: command.conversationId,
        user1_id: Math.min(command.initiatorId, command.otherUserId),
        user2_id: Math.max(command.initiatorId, command.otherUserId),
        started_by: command.initiatorId,
        started_at: command.now.toISOString(),
      },
    },
  ];
}

/** The state of a conversation `userId` can see, else `not_found` (missing, a stranger's, or blocked against them). */
function visibleTo(state: ConversationState, userId: number): z.infer<typeof activeState> {
  if (state.status !== 'Active' || !isVisibleTo(state, userId)) throw notFound();
  return state;
}

function sendMessage(command: SendMessage, state: ConversationState): MessageSent[] {
  const active = visibleTo(state, command.senderId);
  if (active.blockedBy !== null) throw new DomainError('blocked', 'you blocked this conversation: unblock it to send');
  assertValidMessageContent(command.content);
  return [
    {
      type: 'MessageSent',
      data: {
        message_id: command.messageId,
        sender_id: command.senderId,
        content: command.content,
        client_msg_id: command.clientMsgId,
        sent_at: command.now.toISOString(),
      },
    },
  ];
}

/** Reading is idempotent: with nothing unread, there is nothing to record. */
function markConversationRead(command: MarkConversationRead, state: ConversationState): MessagesRead[] {
  const active = visibleTo(state, command.readerId);
  const [reader, other] = active.user1.id === command.readerId ? [active.user1, active.user2] : [active.user2, active.user1];
  if (other.lastSentVersion <= reader.readUpTo) return [];
  return [
    {
      type: 'MessagesRead',
      data: { reader_id: reader.id, up_to_version: other.lastSentVersion, read_at: command.now.toISOString() },
    },
  ];
}

const otherParticipantOf = (state: z.infer<typeof activeState>, userId: number): number =>
  state.user1.id === userId ? state.user2.id : state.user1.id;

/** Blocking twice changes nothing. */
function blockConversation(command: BlockConversation, state: ConversationState): ConversationBlocked[] {
  const active = visibleTo(state, command.userId);
  if (active.blockedBy === command.userId) return [];
  return [
    {
      type: 'ConversationBlocked',
      data: {
        blocked_by: command.userId,
        blocked_user_id: otherParticipantOf(active, command.userId),
        blocked_at: command.now.toISOString(),
      },
    },
  ];
}

/** Only the blocker can unblock (for the other the conversation does not exist); unblocking an open one changes nothing. */
function unblockConversation(command: UnblockConversation, state: ConversationState): ConversationUnblocked[] {
  const active = visibleTo(state, command.userId);
  if (active.blockedBy === null) return [];
  return [
    {
      type: 'ConversationUnblocked',
      data: {
        unblocked_by: command.userId,
        unblocked_user_id: otherParticipantOf(active, command.userId),
        unblocked_at: command.now.toISOString(),
      },
    },
  ];
}

/**
 * Only the sender deletes a message for everyone, also while they have the conversation blocked (taking a
 * message back is what a user who blocks may want most). Deleting it again changes nothing.
 */
function deleteMessage(command: DeleteMessage, state: ConversationState): MessageDeleted[] {
  visibleTo(state, command.requesterId);
  const { message } = command;
  if (!message) throw new DomainError('not_found', 'message not found');
  if (message.senderId !== command.requesterId) throw new DomainError('forbidden', 'only its sender can delete a message');
  if (deletedAt(state, message.id) !== null) return [];
  return [
    {
      type: 'MessageDeleted',
      data: {
        message_id: message.id,
        message_version: message.version,
        deleted_by: command.requesterId,
        deleted_at: command.now.toISOString(),
      },
    },
  ];
}

export function decide(command: ConversationCommand, state: ConversationState): ConversationEvent[] {
  switch (command.type) {
    case 'StartConversation':
      return startConversation(command, state);
    case 'SendMessage':
      return sendMessage(command, state);
    case 'MarkConversationRead':
      return markConversationRead(command, state);
    case 'BlockConversation':
      return blockConversation(command, state);
    case 'UnblockConversation':
      return unblockConversation(command, state);
    case 'DeleteMessage':
      return deleteMessage(command, state);
    default: {
      const unknown: never = command;
      throw new Error(`unknown command ${JSON.stringify(unknown)}`);
    }
  }
}

//// Evolution

function updateParticipant(
  state: z.infer<typeof activeState>,
  userId: number,
  update: (participant: Participant) => Participant,
): z.infer<typeof activeState> {
  if (state.user1.id === userId) return { ...state, user1: update(state.user1) };
  if (state.user2.id === userId) return { ...state, user2: update(state.user2) };
  return state;
}

export function evolve(state: ConversationState, event: ConversationEvent): ConversationState {
  switch (event.type) {
    case 'ConversationStarted': {
      const fresh = (id: number): Participant => ({ id, lastSentVersion: 0, readUpTo: 0 });
      return {
        status: 'Active',
        conversationId: event.data.conversation_id,
        version: 1,
        user1: fresh(event.data.user1_id),
        user2: fresh(event.data.user2_id),
        blockedBy: null,
        deleted: {},
      };
    }
    case 'MessageSent': {
      if (state.status !== 'Active') return state;
      const version = state.version + 1;
      return updateParticipant({ ...state, version }, event.data.sender_id, (p) => ({ ...p, lastSentVersion: version }));
    }
    case 'MessagesRead': {
      if (state.status !== 'Active') return state;
      return updateParticipant({ ...state, version: state.version + 1 }, event.data.reader_id, (p) => ({
        ...p,
        readUpTo: Math.max(p.readUpTo, event.data.up_to_version),
      }));
    }
    case 'ConversationBlocked': {
      if (state.status !== 'Active') return state;
      return { ...state, version: state.version + 1, blockedBy: event.data.blocked_by };
    }
    case 'ConversationUnblocked': {
      if (state.status !== 'Active') return state;
      return { ...state, version: state.version + 1, blockedBy: null };
    }
    case 'MessageDeleted': {
      if (state.status !== 'Active') return state;
      return {
        ...state,
        version: state.version + 1,
        deleted: { ...state.deleted, [event.data.message_id]: event.data.deleted_at },
      };
    }
    default: {
      const unknown: never = event;
      throw new Error(`unknown event ${JSON.stringify(unknown)}`);
    }
  }
}

export const conversationDecider: Decider<ConversationCommand, ConversationEvent, ConversationState> = {
  streamType: CONVERSATION_STREAM_TYPE,
  initialState,
  decide,
  evolve,
  parseEvent: (recorded) => conversationEvent.parse({ type: recorded.type, data: recorded.data }),
  snapshotSchema: 2,
  parseSnapshot: (json) => {
    const parsed = activeState.safeParse(json);
    return parsed.success ? parsed.data : null;
  },
};
