import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.js';
import { GatewayError } from './errors.js';
import { redisUnavailable } from './redis-unavailable.js';

/**
 * Sliding-window log in one Redis sorted set per user, updated atomically by a script: exact over any
 * window (no double burst at a fixed window's edge), shared by REST and WS and by every gateway. Refused
 * attempts are not recorded, so a client that keeps retrying is let in as soon as the window allows.
 * One call takes a whole batch of sends (KEYS[i] with member ARGV[3 + i]; a user may appear more than once)
 * and returns, for each, 0 when allowed, else the milliseconds until the oldest counted send leaves the window.
 */
const SLIDING_WINDOW = `
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local waits = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) < limit then
    redis.call('ZADD', key, now, ARGV[3 + i])
    redis.call('PEXPIRE', key, window)
    waits[i] = 0
  else
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    waits[i] = math.max(1, tonumber(oldest[2]) + window - now)
  end
end
return waits`;

export type RateLimiter = {
  /**
   * Takes one send from the budget of each user given, in order, in one Redis round trip.
   * @returns for each, null when allowed, else the GatewayError `rate_limited` with the seconds to wait.
   * @throws GatewayError `unavailable` when Redis does not answer.
   */
  consumeEach(userIds: readonly number[]): Promise<(GatewayError | null)[]>;
};

export function createMessageRateLimiter(deps: {
  readonly redis: Redis;
  readonly keyPrefix: string;
  readonly limit: number;
  readonly windowMs?: number;
  readonly clock: () => Date;
  readonly logger: Logger;
}): RateLimiter {
  const windowMs = deps.windowMs ?? 60_000;
  return {
    async consumeEach(userIds) {
      if (userIds.length === 0) return [];
      const now = deps.clock().getTime();
      const keys = userIds.map((userId) => `${deps.keyPrefix}ratelimit:messages:${userId}`);
      const members = userIds.map(() => `${now}:${randomUUID()}`);
      let waits: number[];
      try {
        waits = (await deps.redis.eval(
          SLIDING_WINDOW,
          keys.length,
          ...keys,
          String(now),
          String(windowMs),
          String(deps.limit),
          ...members,
        )) as number[];
      } catch (error) {
        throw redisUnavailable(deps.logger, error, 'cannot check the message rate limit');
      }
      return userIds.map((_, index) => {
        const waitMs = Number(waits[index]);
        if (!(waitMs > 0)) return null;
        return new GatewayError(
          'rate_limited',
          `too many messages: at most ${deps.limit} per ${windowMs / 1000} s`,
          Math.ceil(waitMs / 1000),
        );
      });
    },
  };
}
