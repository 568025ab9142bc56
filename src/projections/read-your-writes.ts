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
export type WriteWatermark = { readonly userId: number; readonly conversationId: string; readonly version: number };

export type WriteWatermarks = {
  record(userId: number, conversationId: string, version: number): Promise<void>;
  /** Records many writes in one Redis round trip. */
  recordEach(writes: readonly WriteWatermark[]): Promise<void>;
  /** conversation id -> the highest version this user wrote there recently. */
  pending(userId: number): Promise<Map<string, number>>;
};

/**
 * HSET only if higher: two tabs of one user may record out of order. KEYS[i] gets field ARGV[2i] set to
 * version ARGV[2i + 1]; ARGV[1] is the time to live.
 */
const RECORD_MAX = `
for i, key in ipairs(KEYS) do
  local field = ARGV[2 * i]
  local version = tonumber(ARGV[2 * i + 1])
  if version > tonumber(redis.call('HGET', key, field) or '0') then redis.call('HSET', key, field, version) end
  redis.call('EXPIRE', key, ARGV[1])
end
return 1`;

export function createWriteWatermarks(
  redis: Redis,
  options: { readonly keyPrefix: string; readonly ttlSeconds?: number },
): WriteWatermarks {
  const key = (userId: number) => `${options.keyPrefix}rw:${userId}`;
  const ttl = String(options.ttlSeconds ?? 60);
  const recordEach = async (writes: readonly WriteWatermark[]): Promise<void> => {
    if (writes.length === 0) return;
    const fields = writes.flatMap((write) => [write.conversationId, String(write.version)]);
    await redis.eval(RECORD_MAX, writes.length, ...writes.map((write) => key(write.userId)), ttl, ...fields);
  };
  return {
    record: (userId, conversationId, version) => recordEach([{ userId, conversationId, version }]),
    recordEach,
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
