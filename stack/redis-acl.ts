/**
 * Least privilege on Redis: the one user the service needs, the gateway's (only the gateway talks to Redis).
 * Its keys are its own prefix (rate limits) and, read-only, Matcha's
 * `blacklist:*` (revoked tokens); its commands are those it sends and those its scripts run (Redis checks
 * a script's commands against the caller's ACL too). docker-compose.yml holds the same rule, as the test of
 * this module checks.
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
  ];
}
