import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOP_POINTS, type HopRecord } from '../../../src/shared/hop-times.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { api, gatewayEnv, mintToken, openSocket, type TestSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles } from '../../support/processes.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * HOP_TIMES_CAPACITY (a benchmark setting, src/shared/hop-times.ts): with it, the gateway, the relay and the
 * fan-out each record when a message passed their points and serve that on GET /hop-times, keyed by the
 * message's conversation and seq; without it (the gateway B here), nothing is kept and the route is absent.
 */

const A = 301;
const B = 302;
const opsPorts = new Map<string, number>();
let gatewayPort: number;
let plainGatewayOpsPort: number;
const sockets: TestSocket[] = [];

async function hopTimesOf(role: string): Promise<Record<string, HopRecord>> {
  const response = await fetch(`http://127.0.0.1:${opsPorts.get(role)}/hop-times`);
  expect(response.status).toBe(200);
  return ((await response.json()) as { records: Record<string, HopRecord> }).records;
}

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  const env = { ...gatewayEnv({ databaseUrl, prefix }), HOP_TIMES_CAPACITY: '100' };
  const [first = 0, plainGatewayPort = 0] = await getFreePorts(2);
  gatewayPort = first;
  for (const [name, entry] of [
    ['relay', 'src/relay/main.ts'],
    ['projector', 'src/projections/main.ts'],
    ['fanout', 'src/fanout/main.ts'],
    ['gateway', 'src/gateway/main.ts'],
  ] as const) {
    const role = await spawnRole({ name, entry, env: { ...env, PORT: String(gatewayPort) } });
    const line = await role.waitForOutput(/ops server on port (\d+)/, 90_000);
    opsPorts.set(name, Number(/port (\d+)/.exec(line)?.[1]));
    if (name === 'fanout') await role.waitForOutput(/fanning out/, 90_000);
  }
  const plain = await spawnRole({ name: 'gateway-plain', entry: 'src/gateway/main.ts', env: { ...env, HOP_TIMES_CAPACITY: '0', PORT: String(plainGatewayPort) } });
  const line = await plain.waitForOutput(/ops server on port (\d+)/, 90_000);
  plainGatewayOpsPort = Number(/port (\d+)/.exec(line)?.[1]);
}, 240_000);

afterAll(async () => {
  for (const socket of sockets) socket.ws.terminate();
  await stopAllRoles();
});

describe('per-hop times of the live path', () => {
  it('records every point of a message sent over the socket, in path order, keyed by conversation and seq', async () => {
    const tokenA = await mintToken(A);
    const tokenB = await mintToken(B);
    const wsUrl = `ws://127.0.0.1:${gatewayPort}/api/v1/chat/ws`;
    const sender = await openSocket(wsUrl, { token: tokenA });
    const recipient = await openSocket(wsUrl, { token: tokenB });
    sockets.push(sender, recipient);
    await Promise.all([sender, recipient].map((socket) => socket.waitFor((frame) => frame.type === 'connected')));
    const created = await api(`http://127.0.0.1:${gatewayPort}`, 'POST', '/api/v1/chat/conversations', { token: tokenA, body: { user_id: B } });
    expect(created.status).toBe(201);
    const conversationId = (created.body['data'] as { id: string }).id;

    const ack = await sender.request({ type: 'send_message', conversation_id: conversationId, content: 'timed' });
    expect(ack).toMatchObject({ type: 'ack', data: { seq: 2 } });
    await recipient.waitFor((frame) => frame.type === 'new_message' && frame['seq'] === 2);

    const key = `${conversationId}:2`;
    // The socket may have had the fast path's copy: the ordered path's copy reaches the gateway a moment later.
    await waitUntil('the ordered copy at the gateway', async () => (await hopTimesOf('gateway'))[key]?.delivery_received !== undefined, { timeoutMs: 30_000 });
    const [gateway = {}, relay = {}, fanout = {}] = await Promise.all(['gateway', 'relay', 'fanout'].map(hopTimesOf));
    expect(Object.keys(gateway[key] ?? {}).sort()).toEqual([
      'batch_read',
      'batch_started',
      'committed',
      'delivery_received',
      'fast_path_published',
      'fast_path_received',
      'gateway_received',
      'socket_written',
    ]);
    expect(Object.keys(relay[key] ?? {}).sort()).toEqual(['relay_acked', 'relay_read']);
    expect(Object.keys(fanout[key] ?? {}).sort()).toEqual(['fanout_fetched', 'fanout_published', 'stored']);
    const record: HopRecord = { ...gateway[key], ...relay[key], ...fanout[key] };
    const times = HOP_POINTS.map((point) => record[point]!);
    const now = performance.timeOrigin + performance.now();
    for (const at of times) expect(at).toBeGreaterThan(now - 120_000);
    // Path order, but for the relay's read against the gateway's commit (the relay may see the commit first)
    // and the relay's ack against the fan-out (JetStream hands the message on before the ack is back).
    // Across two processes the clocks (each performance.timeOrigin + now) differ by a few milliseconds.
    const inOrder = (from: (typeof HOP_POINTS)[number], to: (typeof HOP_POINTS)[number], skewMs = 0) =>
      expect(record[to]!, `${from} -> ${to}`).toBeGreaterThanOrEqual(record[from]! - skewMs);
    const ACROSS_PROCESSES_MS = 10;
    inOrder('gateway_received', 'batch_started');
    inOrder('batch_started', 'batch_read');
    inOrder('batch_read', 'committed');
    inOrder('committed', 'fast_path_published');
    inOrder('fast_path_published', 'fast_path_received');
    inOrder('batch_started', 'relay_read', ACROSS_PROCESSES_MS);
    inOrder('relay_read', 'relay_acked');
    inOrder('fanout_fetched', 'fanout_published');
    inOrder('fanout_published', 'delivery_received', ACROSS_PROCESSES_MS);
    // Written once, by whichever copy the socket took first: the fast path's, or the ordered path's.
    expect(record.socket_written!).toBeGreaterThanOrEqual(Math.min(record.fast_path_received!, record.delivery_received!));
    // The JetStream timestamp is nats-server's clock, to the microsecond: after the read, before the fetch.
    expect(record.stored!).toBeGreaterThan(record.relay_read! - ACROSS_PROCESSES_MS);
    expect(record.stored!).toBeLessThan(record.fanout_fetched! + ACROSS_PROCESSES_MS);
    // The conversation's first event was not sent over the socket: no receipt or batch of the gateway.
    expect(gateway[`${conversationId}:1`]?.gateway_received).toBeUndefined();
  });

  it('keeps nothing and serves no /hop-times on a role started without HOP_TIMES_CAPACITY', async () => {
    const response = await fetch(`http://127.0.0.1:${plainGatewayOpsPort}/hop-times`);
    expect(response.status).toBe(404);
  });
});
