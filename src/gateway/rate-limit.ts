import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.js';
import { GatewayError } from './errors.js';
import { redisUnavailable } from './redis-unavailable.js';

/**
 * Sliding-window log in one Redis sorted set per user and limit, updated atomically by a script: exact over
 * any window (no double burst at a fixed window's edge), shared by REST and WS and by every gateway. Refused
 * attempts are not recorded, so a client that keeps retrying is let in as soon as the window allows.
 * One call takes a whole batch (KEYS[i] with member ARGV[3 + i]; a user may appear more than once) and
 * returns, for each, 0 when allowed, else the milliseconds until the oldest counted attempt leaves the window.
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

/** One unit taken from a user's budget; given back by `refund` when the attempt turned out to cost nothing. */
export type Allowance = { readonly key: string; readonly member: string };

export type RateLimiter = {
  /**
   * Takes one unit from the budget of each user given, in order, in one Redis round trip.
   * @returns for each, its allowance, or the GatewayError `rate_limited` with the seconds to wait.
   * @throws GatewayError `unavailable` when Redis does not answer.
   */
  consumeEach(userIds: readonly number[]): Promise<(Allowance | GatewayError)[]>;
  /** One unit of one user. @throws GatewayError `rate_limited` or `unavailable`. */
  consume(userId: number): Promise<Allowance>;
  /** Gives units back (an idempotent retry, a send to a missing conversation): one round trip, best effort. */
  refund(allowances: readonly Allowance[]): Promise<void>;
};

/** A per-user limit: at most `limit` attempts per `windowMs`, across every gateway. */
export function createRateLimiter(deps: {
  readonly redis: Redis;
  readonly keyPrefix: string;
  /** The limit's name in its Redis keys: `<prefix>ratelimit:<name>:<user id>`. */
  readonly name: string;
  /** What is limited, for the error message: "messages", "conversations started". */
  readonly what: string;
  readonly limit: number;
  readonly windowMs?: number;
  readonly clock: () => Date;
  readonly logger: Logger;
}): RateLimiter {
  const windowMs = deps.windowMs ?? 60_000;
  const limiter: RateLimiter = {
    async consumeEach(userIds) {
      if (userIds.length === 0) return [];
      const now = deps.clock().getTime();
      const keys = userIds.map((userId) => `${deps.keyPrefix}ratelimit:${deps.name}:${userId}`);
      const members = userIds.map(() => `${now}:${randomUUID()}`);
      let waits: number[];
      try {
        waits = (await deps.redis.eval(SLIDING_WINDOW, keys.length, ...keys, String(now), String(windowMs), String(deps.limit), ...members)) as number[];
      } catch (error) {
        throw redisUnavailable(deps.logger, error, `cannot check the rate limit of ${deps.what}`);
      }
      return keys.map((key, index) => {
        const waitMs = Number(waits[index]);
        if (!(waitMs > 0)) return { key, member: members[index]! };
        return new GatewayError('rate_limited', `too many ${deps.what}: at most ${deps.limit} per ${windowMs / 1000} s`, Math.ceil(waitMs / 1000));
      });
    },
    async consume(userId) {
      const [result] = await limiter.consumeEach([userId]);
      if (!result || result instanceof GatewayError) throw result ?? new Error('no rate-limit answer');
      return result;
    },
    async refund(allowances) {
      if (allowances.length === 0) return;
      const pipeline = deps.redis.pipeline();
      for (const { key, member } of allowances) pipeline.zrem(key, member);
      try {
        await pipeline.exec();
      } catch (error) {
        // Only the user's budget is at stake: it comes back by itself when the window passes.
        deps.logger.warn({ reason: error instanceof Error ? error.message : 'unknown error' }, 'could not refund rate-limit units');
      }
    },
  };
  return limiter;
}

export const isAllowance = (result: Allowance | GatewayError): result is Allowance => !(result instanceof GatewayError);
