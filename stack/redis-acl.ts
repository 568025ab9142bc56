/**
 * Least privilege on Redis: a user per role that talks to Redis, the gateway and the notifier. The gateway's
 * keys are its own prefix (rate limits, socket leases, presence) and, read-only, Matcha's `blacklist:*` (revoked
 * tokens). The notifier reads the gateways' socket leases, writes its own notified keys, and publishes on
 * Matcha's channel only. Each user's commands are those it sends and those its scripts run (Redis checks a
 * script's commands against the caller's ACL too). docker-compose.yml holds the same rules, as the tests of
 * this module check.
 */

export const GATEWAY_REDIS_USER = 'gateway';

/** The ACL rule of the gateway's user, without its password (`>secret`, added where the secret is known). */
export function gatewayRedisAcl(keyPrefix: string): string[] {
  return [
    'on',
    'resetchannels',
    `~${keyPrefix}*`,
    '%R~blacklist:*',
    '-@all',
    // ioredis: the ready check on connect, readiness probe, graceful close.
    '+info',
    '+ping',
    '+quit',
    // revoked-tokens.ts and the revocation sweep; rate-limit.ts (its script, and refunds); socket-leases.ts
    // (its script, release, and the renewal's ZADD and PEXPIRE, listed below).
    '+exists',
    '+eval',
    '+zrem',
    // Run by the scripts of rate-limit.ts and socket-leases.ts.
    '+zremrangebyscore',
    '+zcard',
    '+zadd',
    '+pexpire',
    '+zrange',
    // Run by presence-store.ts's scripts (presence beside the socket leases), and its HMGET of states.
    '+zcount',
    '+zrangebyscore',
    '+hget',
    '+hmget',
    '+hset',
  ];
}

export const NOTIFIER_REDIS_USER = 'notifier';

/**
 * The ACL rule of the notifier's user, without its password: the gateways' socket leases read-only, its
 * notified keys, and publishing on `channel` (Matcha's NOTIFICATIONS_CHANNEL), nothing else.
 */
export function notifierRedisAcl(keyPrefix: string, channel: string): string[] {
  return [
    'on',
    'resetchannels',
    `&${channel}`,
    `%R~${keyPrefix}sockets:*`,
    `~${keyPrefix}notified:*`,
    '-@all',
    // ioredis: the ready check on connect, readiness probe, graceful close.
    '+info',
    '+ping',
    '+quit',
    // open-sockets.ts; publish-once.ts's script, and what it runs.
    '+zcount',
    '+eval',
    '+set',
    '+publish',
  ];
}
