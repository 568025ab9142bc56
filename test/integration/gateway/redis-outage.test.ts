import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sleep } from '../../../src/shared/sleep.js';
import { getFreePort } from '../../../stack/free-port.js';
import { startRedisServer, type RedisServer } from '../../../stack/redis-server.js';
import { api, mintToken, openSocket, startTestGateway, upgradeStatus, type TestGateway } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * Redis is stopped under a running gateway. Not knowing whether a token is revoked (or whether a send is over
 * the rate limit) is a 503, never a 401 that would make a client log its user out; and the gateway serves
 * again by itself once Redis is back. The test run's Redis is shared by every file, so this one stops a
 * private redis-server of its own.
 */

let redisDir: string;
let redisPort: number;
let redis: RedisServer | undefined;
let gateway: TestGateway;

beforeAll(async () => {
  redisDir = await mkdtemp(path.join(tmpdir(), 'matcha-redis-outage-'));
  redisPort = await getFreePort();
  redis = await startRedisServer({ port: redisPort, dir: redisDir });
  gateway = await startTestGateway({
    databaseUrl: await createTestDatabase(),
    prefix: testPrefix(),
    env: { REDIS_URL: redis.url },
  });
});
afterAll(async () => {
  await gateway?.close();
  await redis?.close();
  await rm(redisDir, { recursive: true, force: true });
});

describe('a Redis outage', () => {
  it('answers 503 (never 401) on REST and on the upgrade while Redis is down, and 200 again once it is back', async () => {
    const alice = await mintToken(71);
    const created = await api(gateway.url, 'POST', '/api/v1/chat/conversations', { token: alice, body: { user_id: 72 } });
    expect(created.status).toBe(201);
    const conversationId = (created.body['data'] as { id: string }).id;
    // A command, not a query: no projector runs here, and queries wait for the read tables.
    const startAgain = () => api(gateway.url, 'POST', '/api/v1/chat/conversations', { token: alice, body: { user_id: 72 } });
    expect((await startAgain()).status).toBe(200);

    await redis?.close();
    redis = undefined;

    // Fails fast, however long Redis has been gone: no request waits in the offline queue for reconnection
    // attempts (which back off to 2 s each).
    const latencies: number[] = [];
    for (let i = 0; i < 6; i++) {
      const started = Date.now();
      const listed = await api(gateway.url, 'GET', '/api/v1/chat/conversations', { token: alice });
      latencies.push(Date.now() - started);
      expect(listed.status).toBe(503);
      expect(listed.body).toMatchObject({ success: false, code: 'unavailable' });
      expect(typeof listed.body['error']).toBe('string');
      expect(listed.headers.get('retry-after')).toBe('1');
      await sleep(500);
    }
    expect(Math.max(...latencies), latencies.join(', ')).toBeLessThan(1_500);
    expect(await upgradeStatus(`${gateway.wsUrl}?token=${alice}`)).toBe(503);
    expect(await upgradeStatus(gateway.wsUrl, { token: alice })).toBe(503);
    const presence = await api(gateway.url, 'GET', '/api/v1/chat/presence?user_ids=72', { token: alice });
    expect(presence.status).toBe(503);
    expect(presence.body).toMatchObject({ success: false, code: 'unavailable' });
    expect(gateway.logs()).toMatch(/Redis did not answer: cannot check whether the token is revoked/);

    // A token that is bad for its own reasons is still a 401: no Redis needed to know that.
    expect((await api(gateway.url, 'GET', '/api/v1/chat/conversations', { token: await mintToken(71, { secret: 'forged' }) })).status).toBe(401);

    redis = await startRedisServer({ port: redisPort, dir: redisDir });
    await waitUntil('REST to answer 200', async () => (await startAgain()).status === 200, {
      timeoutMs: 15_000,
    });
    expect(await upgradeStatus(`${gateway.wsUrl}?token=${alice}`)).toBe(101);
    const sent = await api(gateway.url, 'POST', '/api/v1/chat/messages', { token: alice, body: { conversation_id: conversationId, message: 'back' } });
    expect(sent.status).toBe(201);
  });

  it('answers a send on an open socket whose rate limit cannot be checked with an `unavailable` error frame', async () => {
    // REST checks the token in Redis before the rate limit; a socket authenticated earlier reaches the limiter.
    const alice = await mintToken(73);
    const created = await api(gateway.url, 'POST', '/api/v1/chat/conversations', { token: alice, body: { user_id: 74 } });
    const conversationId = (created.body['data'] as { id: string }).id;
    const socket = await openSocket(gateway.wsUrl, { token: alice });
    await socket.waitFor((frame) => frame.type === 'connected');
    await redis?.close();
    redis = undefined;
    const answer = await socket.request({ type: 'send_message', conversation_id: conversationId, content: 'x' });
    expect(answer).toMatchObject({ type: 'error', data: { code: 'unavailable' } });
    expect(socket.ws.readyState).toBe(socket.ws.OPEN);
    redis = await startRedisServer({ port: redisPort, dir: redisDir });
    await waitUntil('the send to go through', async () => (await socket.request({ type: 'send_message', conversation_id: conversationId, content: 'y' })).type === 'ack', {
      timeoutMs: 15_000,
    });
    await socket.close();
  });

  it('closes a first-frame auth with 1011, not 4401, while Redis is down', async () => {
    const token = await mintToken(75);
    await redis?.close();
    redis = undefined;
    const socket = await openSocket(gateway.wsUrl);
    socket.send({ type: 'auth', token });
    expect((await socket.closed).code).toBe(1011);
    redis = await startRedisServer({ port: redisPort, dir: redisDir });
  });
});
