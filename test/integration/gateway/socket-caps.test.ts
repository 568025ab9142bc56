import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mintToken, openSocket, startTestGateway, upgradeStatus, type TestGateway, type TestSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';

/** Caps per gateway: sockets waiting for their first-frame auth, and sockets in all; past them, 503 on the upgrade. */

let gateway: TestGateway;
const sockets: TestSocket[] = [];

beforeAll(async () => {
  gateway = await startTestGateway({
    databaseUrl: await createTestDatabase(),
    prefix: testPrefix(),
    env: { WS_MAX_UNAUTHENTICATED_SOCKETS: '2', WS_MAX_SOCKETS: '4' },
  });
});
afterAll(async () => {
  await Promise.all(sockets.map((socket) => socket.close()));
  await gateway.close();
});

async function open(token?: string): Promise<TestSocket> {
  const socket = await openSocket(gateway.wsUrl, token === undefined ? {} : { token });
  sockets.push(socket);
  return socket;
}

describe('socket caps', () => {
  it('refuses upgrades without a token past the unauthenticated cap, and any upgrade past the total cap, with 503', async () => {
    const [first, second] = [await open(), await open()];
    expect(await upgradeStatus(gateway.wsUrl)).toBe(503);
    // A token on the upgrade is not waiting to authenticate: still let in.
    const withToken = await open(await mintToken(80));
    await withToken.waitFor((frame) => frame.type === 'connected');

    // Once one of them authenticates, another may wait.
    first.send({ type: 'auth', token: await mintToken(81) });
    await first.waitFor((frame) => frame.type === 'connected');
    const third = await open();
    expect(gateway.gateway.stats().sockets).toBe(4);

    // Four sockets in all: nothing more, token or not.
    expect(await upgradeStatus(gateway.wsUrl, { token: await mintToken(82) })).toBe(503);
    expect(await upgradeStatus(gateway.wsUrl)).toBe(503);

    await third.close();
    await second.close();
    const again = await open(await mintToken(82));
    await again.waitFor((frame) => frame.type === 'connected');
  });
});
