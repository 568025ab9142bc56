import { z } from 'zod';
import type { Decider } from '../decider.js';
import { DomainError } from '../domain-error.js';
import {
  CONVERSATION_STREAM_TYPE,
  conversationEvent,
  type ConversationEvent,
  type ConversationStarted,
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

export type ConversationCommand = StartConversation | SendMessage | MarkConversationRead;

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
});

export type Participant = z.infer<typeof participant>;
export type ConversationState = { readonly status: 'Empty' } | z.infer<typeof activeState>;

export const initialState = (): ConversationState => ({ status: 'Empty' });

export function isParticipant(state: ConversationState, userId: number): boolean {
  return state.status === 'Active' && (state.user1.id === userId || state.user2.id === userId);
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

function sendMessage(command: SendMessage, state: ConversationState): MessageSent[] {
  if (!isParticipant(state, command.senderId)) throw notFound();
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
  if (state.status !== 'Active' || !isParticipant(state, command.readerId)) throw notFound();
  const [reader, other] = state.user1.id === command.readerId ? [state.user1, state.user2] : [state.user2, state.user1];
  if (other.lastSentVersion <= reader.readUpTo) return [];
  return [
    {
      type: 'MessagesRead',
      data: { reader_id: reader.id, up_to_version: other.lastSentVersion, read_at: command.now.toISOString() },
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
  snapshotSchema: 1,
  parseSnapshot: (json) => {
    const parsed = activeState.safeParse(json);
    return parsed.success ? parsed.data : null;
  },
};
