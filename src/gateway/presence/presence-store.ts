import type { Redis } from 'ioredis';
import { socketLeasesKey } from '../socket-leases.js';
import { NEVER_SEEN, type PresenceDecision, type PresenceState } from './presence-machine.js';

/**
 * Presence in Redis, beside the socket leases it is derived from (socket-leases.ts):
 * - `<prefix>presence:<user>`, a hash: the machine's state (`name`, `since`, `seen`) and a `version` that
 *   every write increments; it expires `retentionMs` after its last write, so the users who stopped coming
 *   back cost no memory (they then read as never seen: `last_seen_at` null). An online user's hash is
 *   written at each look, about once a lease lifetime, so it never expires while a socket is open;
 * - `<prefix>presence:due`, a sorted set: when to look at each user again (an online user at its latest
 *   lease's expiry, a leaving one at the end of its grace), which every gateway's sweeper polls.
 * A decision is written only if the version and the liveness of the user's leases (any live, or none) are
 * still what it was decided on: a compare-and-set in one script, so that of two gateways deciding the same
 * transition at once exactly one writes it, and announces it.
 */

/** The user's state, its version, and their socket leases at the moment read. */
export type PresenceFacts = {
  readonly userId: number;
  readonly state: PresenceState;
  readonly version: number;
  readonly liveSockets: number;
  readonly leasesExpireAt: number | null;
  /** For a user taken from the due set: when the look was scheduled. */
  readonly dueAt?: number;
};

export type PresenceWrite = { readonly facts: PresenceFacts; readonly decision: PresenceDecision };

export type PresenceStore = {
  /** Whether Redis is connected: a sweep is not queued behind a reconnection (where it would delay the requests queued with it). */
  connected(): boolean;
  read(userId: number, now: number): Promise<PresenceFacts>;
  /**
   * The users whose look is due at `now`, at most `limit`, each claimed for `claimMs` (moved that far ahead in
   * the due set, so that other sweepers leave it alone meanwhile; the decision's write sets the real time).
   */
  takeDue(now: number, limit: number, claimMs: number): Promise<PresenceFacts[]>;
  /** Writes each decision whose facts still hold. @returns, for each, whether it was written. */
  write(writes: readonly PresenceWrite[], now: number): Promise<boolean[]>;
  /** The states of these users, never-seen ones included. */
  states(userIds: readonly number[]): Promise<Map<number, PresenceState>>;
};

type RawFacts = [user: string, dueAt: string | null, live: number, lastExpiry: string | null, version: string | null, name: string | null, since: string | null, seen: string | null];

/** The facts of one user. KEYS: its lease set and presence hash; ARGV: now, user id. */
const READ = `
local live = redis.call('ZCOUNT', KEYS[1], '(' .. ARGV[1], '+inf')
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
local s = redis.call('HMGET', KEYS[2], 'version', 'name', 'since', 'seen')
return {ARGV[2], false, live, last[2] or false, s[1], s[2], s[3], s[4]}`;

/** The due users' facts, each claimed. KEYS[1]: the due set; ARGV: now, limit, claimed until, key prefix. */
const TAKE_DUE = `
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[2]))
local out = {}
for i = 1, #due, 2 do
  local user = due[i]
  redis.call('ZADD', KEYS[1], ARGV[3], user)
  local leases = ARGV[4] .. 'sockets:' .. user
  local live = redis.call('ZCOUNT', leases, '(' .. ARGV[1], '+inf')
  local last = redis.call('ZRANGE', leases, -1, -1, 'WITHSCORES')
  local s = redis.call('HMGET', ARGV[4] .. 'presence:' .. user, 'version', 'name', 'since', 'seen')
  out[#out + 1] = {user, due[i + 1], live, last[2] or false, s[1], s[2], s[3], s[4]}
end
return out`;

/**
 * Compare-and-set of decisions. KEYS[1]: the due set; ARGV: now, key prefix, retention (ms), then per write:
 * user, expected version, expected liveness (1: some lease live, 0: none), name, since, seen, check at ('' for never).
 */
const WRITE = `
local out = {}
for i = 4, #ARGV, 7 do
  local user = ARGV[i]
  local key = ARGV[2] .. 'presence:' .. user
  local version = redis.call('HGET', key, 'version') or '0'
  local live = redis.call('ZCOUNT', ARGV[2] .. 'sockets:' .. user, '(' .. ARGV[1], '+inf') > 0 and '1' or '0'
  if version == ARGV[i + 1] and live == ARGV[i + 2] then
    redis.call('HSET', key, 'version', tonumber(version) + 1, 'name', ARGV[i + 3], 'since', ARGV[i + 4], 'seen', ARGV[i + 5])
    redis.call('PEXPIRE', key, ARGV[3])
    if ARGV[i + 6] == '' then redis.call('ZREM', KEYS[1], user) else redis.call('ZADD', KEYS[1], ARGV[i + 6], user) end
    out[#out + 1] = 1
  else
    out[#out + 1] = 0
  end
end
return out`;

const toNumber = (text: string | null | undefined): number | null => (text === null || text === undefined || text === '' ? null : Number(text));

function stateOf(name: string | null, since: string | null, seen: string | null): PresenceState {
  const sinceMs = toNumber(since);
  if (name === 'online') return { name: 'online' };
  if (name === 'leaving' && sinceMs !== null) return { name: 'leaving', since: sinceMs };
  if (name === 'offline') return { name: 'offline', lastSeenAt: toNumber(seen) };
  return NEVER_SEEN;
}

function factsOf(raw: RawFacts): PresenceFacts {
  const [user, dueAt, live, lastExpiry, version, name, since, seen] = raw;
  const liveSockets = Number(live);
  const due = toNumber(dueAt);
  return {
    userId: Number(user),
    state: stateOf(name, since, seen),
    version: toNumber(version) ?? 0,
    liveSockets,
    leasesExpireAt: liveSockets > 0 ? toNumber(lastExpiry) : null,
    ...(due !== null && { dueAt: due }),
  };
}

/** The hash fields of a state: name, since, seen ('' when not set). */
function fieldsOf(state: PresenceState): [string, string, string] {
  switch (state.name) {
    case 'online':
      return ['online', '', ''];
    case 'leaving':
      return ['leaving', String(state.since), ''];
    case 'offline':
      return ['offline', '', state.lastSeenAt === null ? '' : String(state.lastSeenAt)];
  }
}

/** Writes per script call, so that one call never holds Redis for long. */
const WRITES_PER_CALL = 500;

export function createPresenceStore(deps: {
  readonly redis: Redis;
  readonly keyPrefix: string;
  /** How long a user's presence is kept after its last write (`PRESENCE_RETENTION_DAYS`). */
  readonly retentionMs: number;
}): PresenceStore {
  const { redis, keyPrefix } = deps;
  const stateKey = (userId: number) => `${keyPrefix}presence:${userId}`;
  const dueKey = `${keyPrefix}presence:due`;
  return {
    connected: () => redis.status === 'ready',
    async read(userId, now) {
      const raw = (await redis.eval(READ, 2, socketLeasesKey(keyPrefix, userId), stateKey(userId), String(now), String(userId))) as RawFacts;
      return factsOf(raw);
    },
    async takeDue(now, limit, claimMs) {
      const raw = (await redis.eval(TAKE_DUE, 1, dueKey, String(now), String(limit), String(now + claimMs), keyPrefix)) as RawFacts[];
      return raw.map(factsOf);
    },
    async write(writes, now) {
      const written: boolean[] = [];
      for (let start = 0; start < writes.length; start += WRITES_PER_CALL) {
        const args = writes.slice(start, start + WRITES_PER_CALL).flatMap(({ facts, decision }) => [
          String(facts.userId),
          String(facts.version),
          facts.liveSockets > 0 ? '1' : '0',
          ...fieldsOf(decision.next),
          decision.checkAt === null ? '' : String(decision.checkAt),
        ]);
        const answers = (await redis.eval(WRITE, 1, dueKey, String(now), keyPrefix, String(deps.retentionMs), ...args)) as number[];
        written.push(...answers.map((answer) => answer === 1));
      }
      return written;
    },
    async states(userIds) {
      if (userIds.length === 0) return new Map();
      const pipeline = redis.pipeline();
      for (const userId of userIds) pipeline.hmget(stateKey(userId), 'name', 'since', 'seen');
      const results = (await pipeline.exec()) ?? [];
      return new Map(
        userIds.map((userId, index) => {
          const [error, value] = results[index] ?? [new Error('no answer'), null];
          if (error) throw error;
          const [name, since, seen] = value as [string | null, string | null, string | null];
          return [userId, stateOf(name, since, seen)];
        }),
      );
    },
  };
}
