import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../shared/logger.js';
import { redisUnavailable } from './redis-unavailable.js';

/** One open socket's place in its user's count across gateways. */
export type SocketLease = { readonly userId: number; readonly id: string };

export type SocketLeases = {
  /**
   * Takes a place for a new socket of `userId`.
   * @returns the lease, or `too_many` when the user already holds `maxPerUser` live leases on any gateways.
   * @throws GatewayError `unavailable` when Redis does not answer.
   */
  acquire(userId: number): Promise<SocketLease | 'too_many'>;
  /** The socket closed: its place is free at once (best effort; else it expires). */
  release(lease: SocketLease): void;
  /** Keeps the leases of the sockets still open alive: one round trip per 1,000. */
  renew(leases: readonly SocketLease[]): Promise<void>;
};

/**
 * Drops expired leases, then adds one if the user holds fewer than the cap. KEYS[1] the user's sorted set
 * (member: lease id, score: expiry in ms); ARGV: now, time to live, cap, lease id. Returns 1 when taken.
 */
const ACQUIRE = `
local now = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[4])
redis.call('PEXPIRE', KEYS[1], ttl)
return 1`;

const LEASES_PER_ROUND_TRIP = 1_000;

/**
 * The sorted set of `userId`'s socket leases (member: lease id, score: expiry in ms): a member whose score
 * is still ahead is an open socket on some gateway. Presence and the notifier read it too.
 */
export function socketLeasesKey(keyPrefix: string, userId: number): string {
  return `${keyPrefix}sockets:${userId}`;
}

/**
 * The per-user socket cap across gateways: each open socket holds a lease in Redis under its user, with an
 * expiry its gateway pushes forward every `ttlMs / 3`. A socket's close frees its place at once; a gateway
 * that dies stops renewing, and its sockets' places free themselves within `ttlMs`.
 */
export function createSocketLeases(deps: {
  readonly redis: Redis;
  readonly keyPrefix: string;
  readonly maxPerUser: number;
  readonly ttlMs: number;
  readonly clock: () => Date;
  readonly logger: Logger;
}): SocketLeases {
  const key = (userId: number) => socketLeasesKey(deps.keyPrefix, userId);
  return {
    async acquire(userId) {
      const id = randomUUID();
      let taken: unknown;
      try {
        taken = await deps.redis.eval(ACQUIRE, 1, key(userId), String(deps.clock().getTime()), String(deps.ttlMs), String(deps.maxPerUser), id);
      } catch (error) {
        throw redisUnavailable(deps.logger, error, 'cannot count the user\'s sockets');
      }
      return taken === 1 ? { userId, id } : 'too_many';
    },
    release(lease) {
      deps.redis.zrem(key(lease.userId), lease.id).catch((error: unknown) => {
        deps.logger.warn({ reason: error instanceof Error ? error.message : 'unknown error' }, 'could not release a socket lease; it expires');
      });
    },
    async renew(leases) {
      const expiry = String(deps.clock().getTime() + deps.ttlMs);
      for (let start = 0; start < leases.length; start += LEASES_PER_ROUND_TRIP) {
        const pipeline = deps.redis.pipeline();
        for (const lease of leases.slice(start, start + LEASES_PER_ROUND_TRIP)) {
          // XX: a lease that expired meanwhile is not brought back over the cap.
          pipeline.zadd(key(lease.userId), 'XX', expiry, lease.id);
          pipeline.pexpire(key(lease.userId), deps.ttlMs);
        }
        const failed = (await pipeline.exec())?.find(([error]) => error);
        if (failed) throw failed[0] as Error;
      }
    },
  };
}
