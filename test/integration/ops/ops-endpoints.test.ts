import net from 'node:net';
import { networkInterfaces } from 'node:os';
import type { DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  sendMessage,
  startConversation,
  type CommandDeps,
} from '../../../src/commands/conversation/conversation-commands.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { api, gatewayEnv, mintToken, openSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { waitUntil } from '../../support/wait-until.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { waitForLiveProjection } from '../../support/read-model.js';

let pool: DatabasePool;
let roleEnvironment: Record<string, string>;
let gatewayPort: number;
const roles = new Map<string, { process: RoleProcess; port: number }>();

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  const env = {
    ...gatewayEnv({ databaseUrl, prefix }),
    RATE_LIMIT_MESSAGES_PER_MINUTE: '2',
    LOG_LEVEL: 'info',
  };
  roleEnvironment = env;
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 4 });
  gatewayPort = (await getFreePorts(1))[0]!;
  for (const [name, entry] of [
    ['relay', 'src/relay/main.ts'],
    ['projector', 'src/projections/main.ts'],
    ['fanout', 'src/fanout/main.ts'],
    ['gateway', 'src/gateway/main.ts'],
  ] as const) {
    const process = await spawnRole({ name, entry, env: { ...env, PORT: String(gatewayPort) } });
    const line = await process.waitForOutput(/ops server on port (\d+)/);
    roles.set(name, { process, port: Number(/(\d+)/.exec(line)?.[1]) });
  }
  await roles.get('fanout')?.process.waitForOutput(/fanning out/);
  const deps: CommandDeps = { pool, clock: () => new Date(), newId: monotonicFactory() };
  const { conversationId } = await startConversation(deps, { initiatorId: 1, otherUserId: 2 });
  for (let i = 0; i < 5; i++) await sendMessage(deps, { conversationId, senderId: 1, content: `hello ${i}` });
  await waitForLiveProjection(pool);
});

afterAll(async () => {
  await stopAllRoles();
  await pool.end();
});

/** This machine's first non-loopback IPv4 address, if it has one. */
const externalAddress = Object.values(networkInterfaces())
  .flat()
  .find((address) => address !== undefined && address.family === 'IPv4' && !address.internal)?.address;

function canConnect(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

function get(role: string, path: string): Promise<Response> {
  return fetch(`http://127.0.0.1:${roles.get(role)?.port}${path}`);
}

/** The value of an unlabelled-by-us series in Prometheus text (the role label is on every series). */
function sample(text: string, name: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`) || candidate.startsWith(`${name} `));
  return Number(line?.split(' ').at(-1));
}

describe('the operators endpoints of every role', () => {
  it.each(['relay', 'projector', 'fanout'])('%s answers /health and /ready with its dependencies', async (role) => {
    const health = await get(role, '/health');
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await get(role, '/ready');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', nats: 'ok' } });
    expect((await get(role, '/nope')).status).toBe(404);
  });

  it.each(['relay', 'projector', 'fanout', 'gateway'])('%s listens on loopback only for its ops port', async (role) => {
    const port = roles.get(role)?.port ?? 0;
    expect(await canConnect('127.0.0.1', port)).toBe(true);
    if (externalAddress !== undefined) expect(await canConnect(externalAddress, port)).toBe(false);
    expect(roles.get(role)?.process.output()).toMatch(new RegExp(`ops server on port ${port} of 127\\.0\\.0\\.1`));
  });

  it('reports a failed dependency by name only, and logs why', async () => {
    // A gateway whose Redis is a port nobody listens on.
    const deadPort = (await getFreePorts(1))[0]!;
    const gateway = await spawnRole({
      name: 'gateway-without-redis',
      entry: 'src/gateway/main.ts',
      env: { ...roleEnvironment, REDIS_URL: `redis://127.0.0.1:${deadPort}`, PORT: '0' },
    });
    const line = await gateway.waitForOutput(/ops server on port (\d+)/);
    const port = Number(/(\d+)/.exec(line)?.[1]);
    const ready = await fetch(`http://127.0.0.1:${port}/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ status: 'not ready', checks: { postgres: 'ok', nats: 'ok', redis: 'failed', draining: 'ok' } });
    await gateway.waitForOutput(/"msg":"not ready"/);
    expect(gateway.output()).toMatch(/"failures":\{"redis":"./);
    // One structured line per outage, not ioredis's own line per reconnection attempt.
    expect(gateway.output().match(/Redis connection lost/g)).toHaveLength(1);
    expect(gateway.output()).not.toMatch(/Unhandled error event/);
    await gateway.stop();
  });

  it('counts what the relay published and the projector applied, with lag histograms', async () => {
    const relay = await (await get('relay', '/metrics')).text();
    expect(sample(relay, 'chat_relay_events_published_total')).toBe(6);
    expect(sample(relay, 'chat_relay_lag_seconds_count')).toBe(6);
    expect(sample(relay, 'chat_relay_leader')).toBe(1);
    expect(relay).toMatch(/process_resident_memory_bytes\{role="relay"\}/);

    const projector = await (await get('projector', '/metrics')).text();
    expect(sample(projector, 'chat_projector_events_total')).toBe(6);
    expect(sample(projector, 'chat_projector_lag_seconds_count')).toBe(6);
    expect(sample(projector, 'chat_projection_failures_total')).toBe(0);
  });

  it('counts the gateway\'s sockets, accepted messages, deliveries, auth failures and rate-limit hits', async () => {
    const ready = await get('gateway', '/ready');
    expect(await ready.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', nats: 'ok', redis: 'ok', draining: 'ok' } });
    const url = `http://127.0.0.1:${gatewayPort}`;
    const [alice, bob] = [await mintToken(11), await mintToken(12)];
    const socket = await openSocket(`ws://127.0.0.1:${gatewayPort}/api/v1/chat/ws?token=${bob}`);
    await socket.waitFor((frame) => frame.type === 'connected');
    const created = await api(url, 'POST', '/api/v1/chat/conversations', { token: alice, body: { user_id: 12 } });
    const conversationId = (created.body['data'] as { id: string }).id;
    const statuses = [];
    for (let i = 0; i < 3; i++) {
      statuses.push((await api(url, 'POST', '/api/v1/chat/messages', { token: alice, body: { conversation_id: conversationId, message: `m${i}` } })).status);
    }
    expect(statuses).toEqual([201, 201, 429]);
    expect((await api(url, 'GET', '/api/v1/chat/conversations', { token: await mintToken(11, { secret: 'forged' }) })).status).toBe(401);
    await socket.waitForCount((frame) => frame.type === 'new_message', 2);
    // The socket may have had them by the fast path: the ordered path's copies reach the gateway a moment later.
    const gatewayMetrics = async () => (await get('gateway', '/metrics')).text();
    await waitUntil('the ordered copies at the gateway', async () => sample(await gatewayMetrics(), 'chat_send_to_delivery_seconds_count') === 2, {
      timeoutMs: 30_000,
    });

    const metrics = await gatewayMetrics();
    expect(sample(metrics, 'chat_gateway_sockets')).toBe(1);
    expect(sample(metrics, 'chat_messages_accepted_total')).toBe(2);
    expect(sample(metrics, 'chat_rate_limited_total')).toBe(1);
    expect(metrics).toMatch(/chat_auth_failures_total\{reason="bad_signature",role="gateway"\} 1/);
    expect(sample(metrics, 'chat_send_to_delivery_seconds_count')).toBe(2);
    // Both messages' fast-path copies reached this gateway for Bob, written or left to the ordered path.
    const copies = [...metrics.matchAll(/^chat_fast_path_copies_total\{[^}]*\} (\d+)$/gm)].reduce((sum, match) => sum + Number(match[1]), 0);
    expect(copies).toBe(2);
    await socket.close();
  });
});
