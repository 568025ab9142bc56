import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { getFreePorts } from '../../../stack/free-port.js';
import { gatewayEnv, mintToken, openSocket, startTestGateway, upgradeStatus, type TestGateway, type TestSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';

/**
 * MAX_SOCKETS_PER_USER holds across gateways (one Redis count per user, with leases a live gateway renews):
 * HTTP 429 on an authenticated upgrade, 4429 after first-frame auth, a place freed at once by a close and
 * within WS_SOCKET_LEASE_TTL_MS by a gateway that died.
 */

/** Renewed every second: a lease not released lives at least 2 s after its socket's close. */
const LEASE_TTL_MS = 3_000;
let here: TestGateway;
let there: RoleProcess;
let thereUrl: string;
const sockets: TestSocket[] = [];

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  const env = { MAX_SOCKETS_PER_USER: '2', WS_SOCKET_LEASE_TTL_MS: String(LEASE_TTL_MS) };
  here = await startTestGateway({ databaseUrl, prefix, env });
  const [port] = await getFreePorts(1);
  there = await spawnRole({ name: 'gateway-2', entry: 'src/gateway/main.ts', env: { ...gatewayEnv({ databaseUrl, prefix }), ...env, PORT: String(port) } });
  await there.waitForOutput(/gateway listening/);
  thereUrl = `ws://127.0.0.1:${port}/api/v1/chat/ws`;
}, 120_000);
afterAll(async () => {
  for (const socket of sockets) socket.ws.terminate();
  await here.close();
  await stopAllRoles();
});

async function open(url: string, userId: number, how: 'header' | 'first frame' = 'header'): Promise<TestSocket> {
  const token = await mintToken(userId);
  const socket = await openSocket(url, how === 'header' ? { token } : {});
  sockets.push(socket);
  if (how === 'first frame') socket.send({ type: 'auth', token });
  return socket;
}

const connected = (socket: TestSocket) => socket.waitFor((frame) => frame.type === 'connected');

describe('the per-user socket cap across gateways', () => {
  it('counts a user\'s sockets on every gateway, and frees a place on close', async () => {
    const first = await open(here.wsUrl, 90);
    await connected(first);
    await connected(await open(thereUrl, 90));
    // Each gateway holds one socket of user 90, under its own cap: the third is refused on either.
    expect(await upgradeStatus(here.wsUrl, { token: await mintToken(90) })).toBe(429);
    expect(await upgradeStatus(thereUrl, { token: await mintToken(90) })).toBe(429);
    const byFrame = await open(here.wsUrl, 90, 'first frame');
    expect(await byFrame.closed).toMatchObject({ code: 4429 });

    await first.close();
    const closedAt = Date.now();
    await vi.waitFor(async () => expect(await upgradeStatus(here.wsUrl, { token: await mintToken(90) })).toBe(101), { timeout: 5_000, interval: 50 });
    // Released by the close, not expired: sooner than the lease could have lapsed.
    expect(Date.now() - closedAt).toBeLessThan(LEASE_TTL_MS - 1_500);
  });

  it('frees the places of a gateway that died within the lease time', async () => {
    for (let i = 0; i < 2; i++) await connected(await open(thereUrl, 91));
    expect(await upgradeStatus(here.wsUrl, { token: await mintToken(91) })).toBe(429);
    // A live gateway renews its sockets' leases: past their first lifetime they still count.
    await new Promise((resolve) => setTimeout(resolve, LEASE_TTL_MS + 500));
    expect(await upgradeStatus(here.wsUrl, { token: await mintToken(91) })).toBe(429);
    const killedAt = Date.now();
    there.kill('SIGKILL');
    await there.exited;
    await vi.waitFor(async () => expect(await upgradeStatus(here.wsUrl, { token: await mintToken(91) })).toBe(101), {
      timeout: 10_000,
      interval: 100,
    });
    expect(Date.now() - killedAt).toBeLessThan(LEASE_TTL_MS + 2_000);
  });
});
