import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import { GatewayError } from './errors.js';

/**
 * Sliding-window log in one Redis sorted set per user, updated atomically by a script: exact over any
 * window (no double burst at a fixed window's edge), shared by REST and WS and by every gateway. Refused
 * attempts are not recorded, so a client that keeps retrying is let in as soon as the window allows.
 * Returns 0 when allowed, else the milliseconds until the oldest counted send leaves the window.
 */
const SLIDING_WINDOW = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  redis.call('ZADD', KEYS[1], now, ARGV[4])
  redis.call('PEXPIRE', KEYS[1], window)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)`;

export type RateLimiter = {
  /** @throws GatewayError `rate_limited` with the seconds to wait. */
  consume(userId: number): Promise<void>;
};

export function createMessageRateLimiter(deps: {
  readonly redis: Redis;
  readonly keyPrefix: string;
  readonly limit: number;
  readonly windowMs?: number;
  readonly clock: () => Date;
}): RateLimiter {
  const windowMs = deps.windowMs ?? 60_000;
  return {
    async consume(userId) {
      const now = deps.clock().getTime();
      const key = `${deps.keyPrefix}ratelimit:messages:${userId}`;
      const waitMs = Number(
        await deps.redis.eval(SLIDING_WINDOW, 1, key, String(now), String(windowMs), String(deps.limit), `${now}:${randomUUID()}`),
      );
      if (waitMs > 0) {
        throw new GatewayError(
          'rate_limited',
          `too many messages: at most ${deps.limit} per ${windowMs / 1000} s`,
          Math.ceil(waitMs / 1000),
        );
      }
    },
  };
}
