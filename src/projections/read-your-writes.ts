import type { Redis } from 'ioredis';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { sleep } from '../shared/sleep.js';
import { LIVE_TABLES, type ReadTables } from './conversation/apply-conversation-events.js';

/**
 * Read-your-writes without help from the client: after a user's command is answered, the gateway records
 * the version it wrote; that user's next queries first wait (bounded) until the projection has applied it.
 * Watermarks live in Redis, so they hold across gateways, and expire once projections have long caught up.
 */
export type WriteWatermarks = {
  record(userId: number, conversationId: string, version: number): Promise<void>;
  /** conversation id -> the highest version this user wrote there recently. */
  pending(userId: number): Promise<Map<string, number>>;
};

/** HSET only if higher: two tabs of one user may record out of order. */
const RECORD_MAX = `
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > current then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1`;

export function createWriteWatermarks(
  redis: Redis,
  options: { readonly keyPrefix: string; readonly ttlSeconds?: number },
): WriteWatermarks {
  const key = (userId: number) => `${options.keyPrefix}rw:${userId}`;
  const ttl = String(options.ttlSeconds ?? 60);
  return {
    async record(userId, conversationId, version) {
      await redis.eval(RECORD_MAX, 1, key(userId), conversationId, String(version), ttl);
    },
    async pending(userId) {
      const entries = await redis.hgetall(key(userId));
      return new Map(Object.entries(entries).map(([conversation, version]) => [conversation, Number(version)]));
    },
  };
}

const appliedRow = z.object({ id: z.string(), version: z.number().int() });

/**
 * Waits until the read tables have applied at least the given version of each conversation, polling with a
 * short backoff, for at most `timeoutMs`.
 * @returns false when the projection was still behind at the deadline (the caller answers with what it has).
 */
export async function waitForProjection(
  connection: CommonQueryMethods,
  targets: ReadonlyMap<string, number>,
  options: { readonly timeoutMs: number; readonly tables?: ReadTables },
): Promise<boolean> {
  if (targets.size === 0) return true;
  const table = sql.identifier([(options.tables ?? LIVE_TABLES).discussion]);
  const ids = [...targets.keys()];
  const deadline = Date.now() + options.timeoutMs;
  for (let delayMs = 2; ; delayMs = Math.min(delayMs * 2, 25)) {
    const rows = await connection.any(sql.type(appliedRow)`
      SELECT id, version FROM ${table} WHERE id = ANY(${sql.array(ids, 'text')})`);
    const applied = new Map(rows.map((row) => [row.id, row.version]));
    if (ids.every((id) => (applied.get(id) ?? 0) >= (targets.get(id) ?? 0))) return true;
    if (Date.now() >= deadline) return false;
    await sleep(delayMs);
  }
}
