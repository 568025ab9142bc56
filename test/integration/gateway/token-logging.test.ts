import net from 'node:net';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { revocationKey } from '../../../src/gateway/auth/revoked-tokens.js';
import { getFreePort } from '../../../stack/free-port.js';
import { api, gatewayEnv, mintToken, openSocket, upgradeStatus } from '../../support/gateway.js';
import { createTestDatabase, redisUrl, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';

/**
 * A gateway process at LOG_LEVEL=trace gets tokens on every path, in requests that fail in every way we know
 * of (malformed HTTP, bad upgrade URLs, refused tokens, bad frames); not one log line may hold a token, its
 * signature, or the bytes of either.
 */

let gateway: RoleProcess;
let port: number;
let redis: Redis;

beforeAll(async () => {
  port = await getFreePort();
  redis = new Redis(redisUrl());
  gateway = await spawnRole({
    name: 'gateway',
    entry: 'src/gateway/main.ts',
    env: { ...gatewayEnv({ databaseUrl: await createTestDatabase(), prefix: testPrefix() }), PORT: String(port), LOG_LEVEL: 'trace' },
  });
  await gateway.waitForOutput(/gateway listening/);
});
afterAll(async () => {
  await stopAllRoles();
  redis?.disconnect();
});

/** Writes raw bytes to the gateway and resolves with what it answered before closing. */
function rawRequest(text: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    socket.on('error', () => resolve(answer));
    socket.on('close', () => resolve(answer));
    socket.end(text, 'latin1');
  });
}

/** The ways a token's text could appear in a log line: as is, its signature, as Buffer JSON bytes, in base64 or hex. */
function traces(token: string): string[] {
  const signature = token.split('.')[2]!;
  const bytes = [...Buffer.from(signature, 'latin1')].slice(0, 12).join(',');
  return [token, signature, bytes, Buffer.from(signature).toString('base64').slice(0, 24), Buffer.from(signature).toString('hex').slice(0, 24)];
}

describe('tokens in logs', () => {
  it('writes no token at trace level, whatever fails', async () => {
    const base = `http://127.0.0.1:${port}`;
    const wsUrl = `ws://127.0.0.1:${port}/api/v1/chat/ws`;
    const good = await mintToken(81);
    const forged = await mintToken(81, { secret: 'forged-secret-0123456789abcdef0123' });
    const revoked = await mintToken(81);
    await redis.set(revocationKey(revoked), '1', 'EX', 60);
    const tokens = [good, forged, revoked];

    // Malformed HTTP: Node's parser keeps the raw bytes (token included) on the error it reports.
    for (const token of tokens) {
      expect(await rawRequest(`GET /api/v1/chat/conversations?token=${token} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nnot a header\r\n\r\n`)).toMatch(/400/);
      await rawRequest(`GET /api/v1/chat/conversations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\u0001\r\n\r\n`);
      await rawRequest(`GET /?token=${token} HTTP/9.9\r\n\r\n`);
    }
    // An upgrade whose URL does not parse: the URL error carries its input.
    for (const token of tokens) {
      const answer = await rawRequest(
        `GET //[/api/v1/chat/ws?token=${token} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
          'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n',
      );
      expect(answer).toMatch(/^HTTP\/1.1 400/);
    }
    // Refused tokens on REST, in the header and (misdirected) in the query, re-spelled too.
    for (const token of [forged, revoked, `${good}=`, `${revoked}=`]) {
      expect((await api(base, 'GET', `/api/v1/chat/conversations?token=${encodeURIComponent(token)}`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
    }
    expect((await api(base, 'GET', '/api/v1/chat/conversations', { headers: { authorization: `Bearer ${good}`, 'x-user-id': '82' } })).status).toBe(401);
    // Refused upgrades.
    for (const token of [forged, revoked, `${good}=`]) {
      expect(await upgradeStatus(`${wsUrl}?token=${encodeURIComponent(token)}`)).toBe(401);
      expect(await upgradeStatus(wsUrl, { headers: { authorization: `Bearer ${token}` } })).toBe(401);
    }
    // Sockets: a refused first frame, a first frame that is not JSON, a refused refresh, a frame too big.
    for (const frame of [JSON.stringify({ type: 'auth', token: forged }), `{"type":"auth","token":"${revoked}"`, `${good} ${good}`]) {
      const socket = await openSocket(wsUrl);
      socket.send(frame);
      expect((await socket.closed).code).toBe(4401);
    }
    const open = await openSocket(`${wsUrl}?token=${good}&since=${good}`);
    await open.waitFor((frame) => frame.type === 'connected' || frame.type === 'error');
    expect(await open.request({ type: 'auth', token: forged })).toMatchObject({ type: 'error' });
    open.send(`{"type":"auth","token":"${good}", "x": "${'y'.repeat(10_000)}"}`);
    expect((await open.closed).code).toBe(1009);

    // Barrier: a request after everything above; once its log line is out, so are the lines before it.
    const barrier = `/barrier-${crypto.randomUUID()}`;
    expect((await api(base, 'GET', barrier)).status).toBe(404);
    await gateway.waitForOutput(new RegExp(`"path":"${barrier}"`));
    const output = gateway.output();
    expect(output).toMatch(/malformed HTTP request/);
    for (const token of tokens) {
      for (const trace of traces(token)) expect(output).not.toContain(trace);
    }
    expect(output).not.toMatch(/rawPacket/);
  });
});
