import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createRevokedTokens, revocationKey } from '../../../src/gateway/auth/revoked-tokens.js';
import { pino } from 'pino';
import { startRevocationSweep } from '../../../src/gateway/auth/revocation-sweep.js';
import { createRateLimiter, isAllowance } from '../../../src/gateway/rate-limit.js';
import { NEVER_SEEN } from '../../../src/gateway/presence/presence-machine.js';
import { createPresenceStore } from '../../../src/gateway/presence/presence-store.js';
import { createSocketLeases } from '../../../src/gateway/socket-leases.js';
import { usersWithOpenSockets } from '../../../src/notifier/open-sockets.js';
import { notifiedKey, publishOnce } from '../../../src/notifier/publish-once.js';
import { redisReady } from '../../../src/shared/readiness.js';
import { createRedis } from '../../../src/shared/redis.js';
import { getFreePort } from '../../../stack/free-port.js';
import { waitUntil } from '../../support/wait-until.js';
import { GATEWAY_REDIS_USER, gatewayRedisAcl, NOTIFIER_REDIS_USER, notifierRedisAcl } from '../../../stack/redis-acl.js';
import { startRedisServer, type RedisServer } from '../../../stack/redis-server.js';

/**
 * The gateway's and the notifier's Redis users (stack/redis-acl.ts, as docker-compose sets them up) on a
 * private redis-server with the default user off: what each role does works, the rest is refused. `matcha`
 * stands in for Matcha's logout, which writes `blacklist:*`, and for its notify service, which subscribes.
 */

const PREFIX = 'chat:';
const PASSWORD = 'gateway-password-0123456789';
const NOTIFIER_PASSWORD = 'notifier-password-0123456789';
const CHANNEL = 'notifications';
let root: string;
let server: RedisServer;
let gateway: Redis;
let notifier: Redis;
let matcha: Redis;

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'matcha-redis-acl-'));
  server = await startRedisServer({
    port: await getFreePort(),
    dir: root,
    users: [
      [GATEWAY_REDIS_USER, ...gatewayRedisAcl(PREFIX), `>${PASSWORD}`],
      [NOTIFIER_REDIS_USER, ...notifierRedisAcl(PREFIX, CHANNEL), `>${NOTIFIER_PASSWORD}`],
      ['matcha', 'on', '>matcha-password', '~blacklist:*', `&${CHANNEL}`, '+set', '+subscribe'],
    ],
  });
  const url = new URL(server.url);
  gateway = createRedis(`redis://${GATEWAY_REDIS_USER}:${PASSWORD}@${url.host}`);
  notifier = createRedis(`redis://${NOTIFIER_REDIS_USER}:${NOTIFIER_PASSWORD}@${url.host}`);
  matcha = new Redis(`redis://matcha:matcha-password@${url.host}`);
});

afterAll(async () => {
  gateway?.disconnect();
  notifier?.disconnect();
  matcha?.disconnect();
  await server?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

describe('the gateway\'s Redis user', () => {
  it('does what the gateway does: rate limits and refunds, revoked tokens, the revocation sweep, readiness', async () => {
    const logger = pino({ level: 'silent' });
    const limiter = createRateLimiter({ redis: gateway, keyPrefix: PREFIX, name: 'messages', what: 'messages', limit: 1, clock: () => new Date(), logger });
    const [first, second] = await limiter.consumeEach([7, 7]);
    expect(first && isAllowance(first)).toBe(true);
    expect(second).toMatchObject({ code: 'rate_limited' });
    if (!first || !isAllowance(first)) throw new Error('no allowance');
    await limiter.refund([first]);
    expect(isAllowance((await limiter.consumeEach([7]))[0]!)).toBe(true);

    const leases = createSocketLeases({ redis: gateway, keyPrefix: PREFIX, maxPerUser: 1, ttlMs: 60_000, clock: () => new Date(), logger });
    const lease = await leases.acquire(7);
    expect(await leases.acquire(7)).toBe('too_many');
    if (lease === 'too_many') throw new Error('no lease');
    await leases.renew([lease]);
    leases.release(lease);
    await expect.poll(() => leases.acquire(7)).not.toBe('too_many');

    let closed = 0;
    const sweep = startRevocationSweep({
      redis: gateway,
      sockets: () => [{ revocationKey: revocationKey('token-0'), revoke: () => void closed++ }],
      intervalMs: 3_600_000,
      logger,
    });
    await matcha.set(revocationKey('token-0'), '1');
    expect(await sweep.sweep()).toBe(1);
    sweep.stop();
    expect(closed).toBe(1);

    const revoked = createRevokedTokens(gateway, logger);
    expect(await revoked.isRevoked(revocationKey('token-1'))).toBe(false);
    await matcha.set(revocationKey('token-1'), '1');
    expect(await revoked.isRevoked(revocationKey('token-1'))).toBe(true);

    await redisReady(gateway).probe();

    const presence = createPresenceStore({ redis: gateway, keyPrefix: PREFIX, retentionMs: 30 * 86_400_000 });
    const now = Date.now();
    const facts = await presence.read(7, now);
    expect(await presence.write([{ facts, decision: { next: { name: 'online' }, checkAt: now, announce: null } }], now)).toEqual([true]);
    expect((await presence.takeDue(now + 1, 10, 5_000)).map((due) => due.userId)).toEqual([7]);
    expect(await presence.states([7])).toEqual(new Map([[7, { name: 'online' }]]));

    // A presence is kept for the retention after its last write, then forgotten: the user reads as never seen.
    const brief = createPresenceStore({ redis: gateway, keyPrefix: PREFIX, retentionMs: 300 });
    const offline = { name: 'offline', lastSeenAt: now } as const;
    expect(await brief.write([{ facts: await brief.read(8, now), decision: { next: offline, checkAt: null, announce: null } }], now)).toEqual([true]);
    expect(await brief.states([8])).toEqual(new Map([[8, offline]]));
    const forgotten = async () => JSON.stringify((await brief.states([8])).get(8)) === JSON.stringify(NEVER_SEEN);
    await waitUntil('the presence to expire', forgotten, { timeoutMs: 10_000 });
    expect((await brief.states([8])).get(8)).toEqual(NEVER_SEEN);
  });

  it('refuses the rest: writing blacklist:*, other keys, other commands, other users\' scripts', async () => {
    // NOPERM, or from inside a script (Redis 7.0): "The user executing the script can't …".
    const refused = /NOPERM|user executing the script can't/;
    await expect(gateway.set(revocationKey('token-2'), '1')).rejects.toThrow(refused);
    await expect(gateway.eval("return redis.call('SET', KEYS[1], '1')", 1, 'blacklist:x')).rejects.toThrow(refused);
    // Commands the gateway may run, on a key it may only read: no expiring a revocation early.
    await matcha.set(revocationKey('token-3'), '1');
    await expect(gateway.eval("return redis.call('PEXPIRE', KEYS[1], 1)", 1, revocationKey('token-3'))).rejects.toThrow(refused);
    await expect(gateway.eval("return redis.call('HSET', KEYS[1], 'f', '1')", 1, 'blacklist:x')).rejects.toThrow(refused);
    await expect(gateway.eval("return redis.call('ZCARD', KEYS[1])", 1, 'other:key')).rejects.toThrow(refused);
    await expect(gateway.eval("return redis.call('DEL', KEYS[1])", 1, `${PREFIX}x`)).rejects.toThrow(refused);
    await expect(gateway.call('HGETALL', 'other:key')).rejects.toThrow(refused);
    await expect(gateway.flushall()).rejects.toThrow(refused);
    await expect(gateway.keys('*')).rejects.toThrow(refused);
    await expect(gateway.config('GET', '*')).rejects.toThrow(refused);
    await expect(gateway.publish('channel', 'x')).rejects.toThrow(refused);
  });

  it('lets nobody in without a user', async () => {
    const anonymous = new Redis(server.url, { lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0 });
    try {
      await anonymous.connect();
      await expect(anonymous.call('EXISTS', 'blacklist:x')).rejects.toThrow(/NOAUTH/);
    } finally {
      anonymous.disconnect();
    }
  });
});

describe('the notifier\'s Redis user', () => {
  const notification = (messageId: string) => ({
    to_user_id: 8,
    notif_type: '3' as const,
    message: 'Vous avez reçu un nouveau message',
    conversation_id: 'c-1',
    message_id: messageId,
    sender_id: 7,
  });

  it('does what the notifier does: reads the gateways\' socket leases, publishes once on the channel, readiness', async () => {
    const logger = pino({ level: 'silent' });
    const leases = createSocketLeases({ redis: gateway, keyPrefix: PREFIX, maxPerUser: 2, ttlMs: 60_000, clock: () => new Date(), logger });
    const lease = await leases.acquire(18);
    if (lease === 'too_many') throw new Error('no lease');
    expect(await usersWithOpenSockets(notifier, PREFIX, [17, 18], new Date())).toEqual(new Set([18]));
    leases.release(lease);

    const listener = matcha.duplicate();
    const heard: string[] = [];
    listener.on('message', (_channel: string, text: string) => heard.push(text));
    await listener.subscribe(CHANNEL);
    try {
      const options = { keyPrefix: PREFIX, channel: CHANNEL, ttlSeconds: 60 };
      expect(await publishOnce(notifier, options, notification('m-1'))).toBe('published');
      expect(await publishOnce(notifier, options, notification('m-1'))).toBe('already_notified');
      expect(await publishOnce(notifier, options, notification('m-2'))).toBe('published');
      await expect.poll(() => heard.length).toBe(2);
      expect(heard.map((text) => (JSON.parse(text) as { message_id: string }).message_id)).toEqual(['m-1', 'm-2']);
    } finally {
      listener.disconnect();
    }
    await redisReady(notifier).probe();
  });

  it('refuses the rest: other channels, writing the leases or Matcha\'s keys, other commands', async () => {
    const refused = /NOPERM|user executing the script can't/;
    await expect(notifier.publish('other-channel', 'x')).rejects.toThrow(refused);
    await expect(publishOnce(notifier, { keyPrefix: PREFIX, channel: 'other-channel', ttlSeconds: 60 }, notification('m-3'))).rejects.toThrow(refused);
    await expect(notifier.eval("return redis.call('ZADD', KEYS[1], 1, 'x')", 1, `${PREFIX}sockets:8`)).rejects.toThrow(refused);
    await expect(notifier.eval("return redis.call('SET', KEYS[1], '1')", 1, `${PREFIX}sockets:8`)).rejects.toThrow(refused);
    await expect(notifier.eval("return redis.call('SET', KEYS[1], '1')", 1, `${PREFIX}ratelimit:x`)).rejects.toThrow(refused);
    await expect(notifier.eval("return redis.call('SET', KEYS[1], '1')", 1, revocationKey('token-4'))).rejects.toThrow(refused);
    await expect(notifier.call('EXISTS', revocationKey('token-4'))).rejects.toThrow(refused);
    await expect(notifier.get(notifiedKey(PREFIX, 'm-1'))).rejects.toThrow(refused);
    await expect(notifier.subscribe(CHANNEL)).rejects.toThrow(refused);
    await expect(notifier.keys('*')).rejects.toThrow(refused);
    await expect(notifier.flushall()).rejects.toThrow(refused);
  });
});
