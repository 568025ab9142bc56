import { Redis } from 'ioredis';

/** One Redis client; `close()` is `quit()`. Callers that subscribe take a `duplicate()`. */
export function createRedis(url: string): Redis {
  return new Redis(url, { maxRetriesPerRequest: 2, enableAutoPipelining: true, lazyConnect: false });
}
