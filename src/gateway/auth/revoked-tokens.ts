import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/logger.js';
import { redisUnavailable } from '../redis-unavailable.js';

/**
 * Matcha's logout writes `blacklist:<sha256 hex of the token>` into Redis; a token so listed is refused.
 * The key is Matcha's, so it takes no prefix of ours.
 */
export function revocationKey(token: string): string {
  return `blacklist:${createHash('sha256').update(token).digest('hex')}`;
}

export type RevokedTokens = {
  /**
   * Whether the token whose `revocationKey` this is was revoked.
   * @throws GatewayError `unavailable` when Redis does not answer: not knowing is not "revoked".
   */
  isRevoked(key: string): Promise<boolean>;
};

export function createRevokedTokens(redis: Redis, logger: Logger): RevokedTokens {
  return {
    async isRevoked(key) {
      try {
        return (await redis.exists(key)) === 1;
      } catch (error) {
        throw redisUnavailable(logger, error, 'cannot check whether the token is revoked');
      }
    },
  };
}
