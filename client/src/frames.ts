import type { components } from './openapi-types.js';

/**
 * The shapes of the chat API (docs/api.md): the REST resources and every WebSocket frame, both ways.
 * Field names are the wire's, so a frame is typed as it arrives. The frames are written here from
 * docs/api.md; the REST resources come from the OpenAPI document.
 */

/** The REST resources, as docs/openapi.yaml defines them (openapi-types.ts is generated from it). */
export type Conversation = components['schemas']['Conversation'];
export type Message = components['schemas']['Message'];
export type Presence = components['schemas']['Presence'];
export type ReadReceipt = components['schemas']['ReadReceipt'];

export type RequestId = string | number;

type EventFrameBase<T extends string> = {
  type: T;
  conversation_id: string;
  /** The event's position in its conversation: 1, 2, 3, ... */
  seq: number;
  /** Opaque: where a resume starts from. */
  cursor: string;
  timestamp: string;
};

export type ConnectedFrame = { type: 'connected'; timestamp: string; data: { user_id: number; status: 'connected' } };
export type NewMessageFrame = EventFrameBase<'new_message'> & {
  data: { id: string; sender_id: number; message: string | null; timestamp: string; read_at: string | null; client_msg_id: string | null };
};
export type MessagesReadFrame = EventFrameBase<'messages_read'> & { data: { reader_id: number; read_at: string } };
export type ConversationCreatedFrame = EventFrameBase<'conversation_created'> & { data: Conversation };
export type ConversationBlockedFrame = EventFrameBase<'conversation_blocked'> & { data: Conversation };
export type ConversationRemovedFrame = EventFrameBase<'conversation_removed'>;
export type ConversationUnblockedFrame = EventFrameBase<'conversation_unblocked'> & { data: Conversation };
export type ConversationRestoredFrame = EventFrameBase<'conversation_restored'> & { data: Conversation };
export type MessageDeletedFrame = EventFrameBase<'message_deleted'> & { data: { id: string; deleted_at: string } };
export type TypingFrame = { type: 'typing'; conversation_id: string; timestamp: string; data: { user_id: number; is_typing: boolean } };
export type PresenceFrame = { type: 'presence'; timestamp: string; data: Presence };
export type ResyncRequiredFrame = { type: 'resync_required'; timestamp: string; data: { reason: string } };
export type AckFrame = { type: 'ack'; request_id: RequestId; timestamp: string; data: unknown };
export type ErrorFrame = {
  type: 'error';
  request_id?: RequestId;
  timestamp: string;
  /** `retry_after`: seconds the server asks to wait before sending the frame again (rate limits, outages). */
  data: { code: string; message: string; retry_after?: number };
};
export type PongFrame = { type: 'pong'; request_id?: RequestId; timestamp: string };

/** Frames of the conversations' events: they carry `seq` and `cursor`, and a resume replays them. */
export type EventFrame =
  | NewMessageFrame
  | MessagesReadFrame
  | ConversationCreatedFrame
  | ConversationBlockedFrame
  | ConversationRemovedFrame
  | ConversationUnblockedFrame
  | ConversationRestoredFrame
  | MessageDeletedFrame;

export type ServerFrame =
  | ConnectedFrame
  | EventFrame
  | TypingFrame
  | PresenceFrame
  | ResyncRequiredFrame
  | AckFrame
  | ErrorFrame
  | PongFrame;

export type ClientFrame =
  | { type: 'auth'; token: string; request_id?: RequestId }
  | { type: 'send_message'; conversation_id: string; content: string; client_msg_id?: string; request_id?: RequestId }
  | { type: 'join_conversation'; conversation_id: string; request_id?: RequestId }
  | { type: 'read'; conversation_id: string; request_id?: RequestId }
  | { type: 'typing'; conversation_id: string; is_typing: boolean; request_id?: RequestId }
  | { type: 'resume'; since: string; request_id?: RequestId }
  | { type: 'ping'; request_id?: RequestId };

const EVENT_FRAME_TYPES: ReadonlySet<string> = new Set<EventFrame['type']>([
  'new_message',
  'messages_read',
  'conversation_created',
  'conversation_blocked',
  'conversation_removed',
  'conversation_unblocked',
  'conversation_restored',
  'message_deleted',
]);

const OTHER_FRAME_TYPES: ReadonlySet<string> = new Set(['connected', 'typing', 'presence', 'resync_required', 'ack', 'error', 'pong']);

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

export function isEventFrame(frame: ServerFrame): frame is EventFrame {
  return EVENT_FRAME_TYPES.has(frame.type);
}

/**
 * Reads one text frame from the server. Returns null for text that is not a frame this client knows (a newer
 * server's frame type, say): the caller skips it. Event frames must carry a conversation, a positive integer
 * `seq` and a cursor, since deduplication and resuming rely on them.
 */
export function parseServerFrame(text: string): ServerFrame | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isRecord(value) || typeof value['type'] !== 'string') return null;
  const type = value['type'];
  if (EVENT_FRAME_TYPES.has(type)) {
    const { conversation_id: conversationId, seq, cursor } = value;
    if (typeof conversationId !== 'string' || typeof cursor !== 'string' || !Number.isSafeInteger(seq) || (seq as number) < 1) return null;
    return value as EventFrame;
  }
  if (!OTHER_FRAME_TYPES.has(type)) return null;
  if ((type === 'ack' || type === 'error' || type === 'connected' || type === 'presence') && !isRecord(value['data'])) return null;
  return value as ServerFrame;
}
