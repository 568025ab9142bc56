import { Redis } from 'ioredis';
import type { Logger } from './logger.js';

/**
 * One Redis client; `close()` is `quit()`. Callers that subscribe take a `duplicate()`.
 *
 * While Redis is down a command fails at the next failed reconnection attempt (half a second at most) or
 * after `commandTimeout` (a Redis that accepts connections but does not answer), so callers answer 503
 * quickly; the client keeps reconnecting on its own, and commands succeed again once Redis is back.
 */
export function createRedis(url: string): Redis {
  return new Redis(url, {
    maxRetriesPerRequest: 1,
    commandTimeout: 1_000,
    // Reconnect attempts back off to half a second, not ioredis's 2 s: a queued command fails at the next
    // failed attempt, and service resumes that soon after Redis is back.
    retryStrategy: (attempt) => Math.min(attempt * 50, 500),
    enableAutoPipelining: true,
    lazyConnect: false,
  });
}

/** ioredis reports every failed reconnection attempt (and prints them itself with no listener): one line per outage. */
export function logRedisOutages(redis: Redis, logger: Logger): void {
  let down = false;
  redis.on('error', (error: NodeJS.ErrnoException) => {
    if (!down) logger.warn({ code: error.code, reason: error.message }, 'Redis connection lost; reconnecting');
    down = true;
  });
  redis.on('ready', () => {
    if (down) logger.info('Redis connection back');
    down = false;
  });
}
