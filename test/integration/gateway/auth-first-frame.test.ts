import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { revocationKey } from '../../../src/gateway/auth/revoked-tokens.js';
import { mintToken, openSocket, startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { respellings } from '../../support/token-spellings.js';

/** The browser's path: a socket opened without a token authenticates with its first frame. */

let gateway: TestGateway;

beforeAll(async () => {
  gateway = await startTestGateway({ databaseUrl: await createTestDatabase(), prefix: testPrefix() });
});
afterAll(async () => {
  await gateway.close();
});

async function firstFrameClose(token: string): Promise<{ code: number; reason: string; connected: boolean }> {
  const socket = await openSocket(gateway.wsUrl);
  socket.send({ type: 'auth', token });
  const connected = socket.waitFor((frame) => frame.type === 'connected', 3_000).then(
    () => true,
    () => false,
  );
  if (await connected) {
    await socket.close();
    return { ...(await socket.closed), connected: true };
  }
  return { ...(await socket.closed), connected: false };
}

describe('first-frame auth', () => {
  it('closes with 4401 for every other spelling of a revoked token, and of a valid one', async () => {
    const revoked = await mintToken(61);
    const valid = await mintToken(61);
    await gateway.redis.set(revocationKey(revoked), '1', 'EX', 60);
    for (const spelling of [...respellings(revoked), ...respellings(valid)]) {
      const closed = await firstFrameClose(spelling.text);
      expect(closed.connected, spelling.name).toBe(false);
      expect(closed.code, spelling.name).toBe(4401);
    }
    expect((await firstFrameClose(revoked)).code).toBe(4401);
    expect((await firstFrameClose(valid)).connected).toBe(true);
  });
});
