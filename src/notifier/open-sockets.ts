import type { Redis } from 'ioredis';
import { socketLeasesKey } from '../gateway/socket-leases.js';

/**
 * Which of `userIds` have an open socket on any gateway now: a socket lease (gateway/socket-leases.ts)
 * whose expiry is still ahead. A gateway that died stops renewing its leases, so its users count as offline
 * once their leases expire (WS_SOCKET_LEASE_TTL_MS). One round trip for all of them.
 */
export async function usersWithOpenSockets(
  redis: Redis,
  keyPrefix: string,
  userIds: readonly number[],
  now: Date,
): Promise<Set<number>> {
  const users = [...new Set(userIds)];
  if (users.length === 0) return new Set();
  const pipeline = redis.pipeline();
  // Exclusive of now: the gateway's own check drops a lease whose expiry is now.
  for (const userId of users) pipeline.zcount(socketLeasesKey(keyPrefix, userId), `(${now.getTime()}`, '+inf');
  const replies = (await pipeline.exec()) ?? [];
  const online = new Set<number>();
  users.forEach((userId, index) => {
    const [error, count] = replies[index] ?? [new Error('no reply')];
    if (error) throw error;
    if (Number(count) > 0) online.add(userId);
  });
  return online;
}
