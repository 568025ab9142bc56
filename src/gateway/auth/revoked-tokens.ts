import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * Matcha's logout writes `blacklist:<sha256 hex of the token>` into Redis; a token so listed is refused.
 * The key is Matcha's, so it takes no prefix of ours.
 */
export function revocationKey(token: string): string {
  return `blacklist:${createHash('sha256').update(token).digest('hex')}`;
}

export type RevokedTokens = { isRevoked(token: string): Promise<boolean> };

export function createRevokedTokens(redis: Redis): RevokedTokens {
  return {
    async isRevoked(token) {
      return (await redis.exists(revocationKey(token))) === 1;
    },
  };
}
