import type { Redis } from 'ioredis';
import type { DatabasePool } from 'slonik';
import { jwtVerify } from 'jose';
import { saveMessage, startConversation, type Conversation, type Message } from './store.js';

/** One error type with the HTTP status and the WS error code it maps to. */
export class BaselineError extends Error {
  override readonly name = 'BaselineError';
  constructor(
    readonly status: 400 | 401 | 404 | 429,
    readonly code: 'invalid_input' | 'unauthorized' | 'not_found' | 'rate_limited' | 'too_long',
    message: string,
  ) {
    super(message);
  }
}

/** Delivers a frame to both participants' sockets, on every instance (broadcast.ts). */
export type Broadcast = (participants: readonly [number, number], frame: object) => Promise<void>;

export type ChatService = {
  /** @throws BaselineError `unauthorized`. */
  authenticate(token: string): Promise<number>;
  startConversation(userId: number, otherUserId: number): Promise<{ conversation: Conversation; created: boolean }>;
  /** Validate, rate-limit, INSERT, PUBLISH: the seed's path of a message. */
  sendMessage(userId: number, conversationId: number, content: string): Promise<Message>;
};

const MAX_CONTENT_CODE_POINTS = 1_000;

export function createChatService(deps: {
  readonly pool: DatabasePool;
  readonly redis: Redis;
  readonly broadcast: Broadcast;
  readonly jwtSecret: string;
  readonly messagesPerMinute: number;
}): ChatService {
  const key = new TextEncoder().encode(deps.jwtSecret);

  /** The seed's limiter: a counter per user and minute (fixed window), one MULTI round trip. */
  async function consumeRate(userId: number): Promise<void> {
    const window = `baseline:ratelimit:${userId}:${Math.floor(Date.now() / 60_000)}`;
    const results = await deps.redis.multi().incr(window).expire(window, 61).exec();
    const count = Number(results?.[0]?.[1] ?? 0);
    if (count > deps.messagesPerMinute) throw new BaselineError(429, 'rate_limited', `at most ${deps.messagesPerMinute} messages per minute`);
  }

  return {
    async authenticate(token) {
      try {
        const { payload } = await jwtVerify(token, key, { algorithms: ['HS256'], clockTolerance: 30 });
        const userId = Number(payload.sub);
        if (!/^[1-9][0-9]{0,14}$/.test(payload.sub ?? '') || !Number.isSafeInteger(userId)) throw new Error('bad sub');
        return userId;
      } catch {
        throw new BaselineError(401, 'unauthorized', 'invalid or expired token');
      }
    },
    startConversation: (userId, otherUserId) => startConversation(deps.pool, userId, otherUserId),
    async sendMessage(userId, conversationId, content) {
      const length = [...content].length;
      if (content.trim() === '') throw new BaselineError(400, 'invalid_input', 'message must not be empty');
      if (length > MAX_CONTENT_CODE_POINTS) throw new BaselineError(400, 'too_long', `message is over ${MAX_CONTENT_CODE_POINTS} characters`);
      await consumeRate(userId);
      const saved = await saveMessage(deps.pool, userId, conversationId, content);
      if (!saved) throw new BaselineError(404, 'not_found', 'conversation not found');
      const { message } = saved;
      await deps.broadcast(saved.participants, {
        type: 'new_message',
        conversation_id: message.conv_id,
        timestamp: message.time,
        data: { id: message.id, sender_id: message.sender_id, message: message.msg, timestamp: message.time, read_at: null },
      });
      return message;
    },
  };
}
