import type { ErrorCode } from '../errors.js';
import type { RequestId } from './client-frames.js';

/** Frames the gateway itself writes (event frames come from the fan-out). Every frame has a `timestamp`. */

const withRequestId = (requestId: RequestId | undefined) => (requestId === undefined ? {} : { request_id: requestId });

export const serverFrames = {
  connected: (now: Date, userId: number) => ({
    type: 'connected' as const,
    timestamp: now.toISOString(),
    data: { user_id: userId, status: 'connected' as const },
  }),
  ack: (now: Date, requestId: RequestId, data: unknown) => ({
    type: 'ack' as const,
    request_id: requestId,
    timestamp: now.toISOString(),
    data,
  }),
  /** `retryAfterSeconds`: when to try again (`retry_after`), for the refusals that pass (rate limits, outages). */
  error: (now: Date, requestId: RequestId | undefined, code: ErrorCode, message: string, retryAfterSeconds?: number) => ({
    type: 'error' as const,
    ...withRequestId(requestId),
    timestamp: now.toISOString(),
    data: { code, message, ...(retryAfterSeconds !== undefined && { retry_after: retryAfterSeconds }) },
  }),
  pong: (now: Date, requestId: RequestId | undefined) => ({ type: 'pong' as const, ...withRequestId(requestId), timestamp: now.toISOString() }),
  typing: (now: Date, conversationId: string, userId: number, isTyping: boolean) => ({
    type: 'typing' as const,
    conversation_id: conversationId,
    timestamp: now.toISOString(),
    data: { user_id: userId, is_typing: isTyping },
  }),
  /** Not an event (no seq): a partner came online or went offline (presence.ts). */
  presence: (now: Date, userId: number, online: boolean, lastSeenAt: string | null) => ({
    type: 'presence' as const,
    timestamp: now.toISOString(),
    data: { user_id: userId, online, last_seen_at: lastSeenAt },
  }),
  resyncRequired: (now: Date, reason: string) => ({
    type: 'resync_required' as const,
    timestamp: now.toISOString(),
    data: { reason },
  }),
};

/** Close codes; 1009 (frame too big) is sent by `ws` itself. */
export const CLOSE = {
  /** The gateway is restarting or shutting down: reconnect (to another one) with `?since=`. */
  serviceRestart: 1012,
  internalError: 1011,
  /** Missing, bad or expired token; also no `auth` frame in time. */
  unauthorized: 4401,
  /** The peer does not read fast enough: its send queue went over the bound. */
  slowConsumer: 4008,
  /** The user already holds MAX_SOCKETS_PER_USER sockets. */
  tooManySockets: 4429,
} as const;
