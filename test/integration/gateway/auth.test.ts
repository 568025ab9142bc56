import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { revocationKey } from '../../../src/gateway/auth/revoked-tokens.js';
import { api, mintToken, openSocket, startTestGateway, TEST_JWT_SECRET, unsignedToken, upgradeRefusal, upgradeStatus, type TestGateway } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { fitsInHeader, respellings } from '../../support/token-spellings.js';

let main: TestGateway;
/** No leeway, a short first-frame timeout and an origin list: the edges are quick to reach. */
let strict: TestGateway;

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  main = await startTestGateway({ databaseUrl, prefix, env: { JWT_LEEWAY_SECONDS: '30' } });
  strict = await startTestGateway({
    databaseUrl,
    prefix,
    env: { JWT_LEEWAY_SECONDS: '0', WS_AUTH_TIMEOUT_MS: '300', ALLOWED_ORIGINS: 'https://matcha.example, https://app.matcha.example' },
  });
});
afterAll(async () => {
  await Promise.all([main.close(), strict.close()]);
});

const conversations = (token?: string, headers?: Record<string, string>) =>
  api(main.url, 'GET', '/api/v1/chat/conversations', { ...(token === undefined ? {} : { token }), ...(headers ? { headers } : {}) });

function expectUnauthorized(response: Awaited<ReturnType<typeof api>>, message: RegExp): void {
  expect(response.status).toBe(401);
  expect(response.body).toMatchObject({ success: false, code: 'unauthorized' });
  expect(response.body['error']).toMatch(message);
}

describe('REST authentication', () => {
  it('serves GET /health without a token', async () => {
    const response = await api(main.url, 'GET', '/health');
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({ status: 'ok' });
  });

  it('accepts a valid token and answers in the envelope', async () => {
    const response = await conversations(await mintToken(42));
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ success: true, data: [] });
  });

  it('refuses a request without a token, or with another scheme', async () => {
    expectUnauthorized(await conversations(), /missing Authorization/);
    expectUnauthorized(await conversations(undefined, { authorization: 'Basic dXNlcjpwYXNz' }), /Bearer/);
  });

  it('refuses a forged signature', async () => {
    expectUnauthorized(await conversations(await mintToken(42, { secret: 'not-the-secret' })), /signature/);
  });

  it('refuses alg none and algorithms other than HS256', async () => {
    expectUnauthorized(await conversations(unsignedToken(42)), /algorithm|malformed/);
    const hs512 = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS512' })
      .setSubject('42')
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(TEST_JWT_SECRET));
    expectUnauthorized(await conversations(hs512), /algorithm/);
  });

  it('refuses an expired token past the leeway and accepts one within it', async () => {
    expectUnauthorized(await conversations(await mintToken(42, { expiresIn: -120 })), /expired/);
    expect((await conversations(await mintToken(42, { expiresIn: -10 }))).status).toBe(200);
  });

  it('refuses a token that is not valid yet, and one without exp', async () => {
    expectUnauthorized(await conversations(await mintToken(42, { notBefore: 600 })), /not valid yet/);
    const noExp = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject('42').sign(new TextEncoder().encode(TEST_JWT_SECRET));
    expectUnauthorized(await conversations(noExp), /exp/);
  });

  it('refuses a subject that is not a string of digits', async () => {
    expectUnauthorized(await conversations(await mintToken('alice')), /subject/);
    expectUnauthorized(await conversations(await mintToken('0')), /subject/);
  });

  it('refuses a subject that is not a JSON string of decimal digits without a leading zero', async () => {
    const key = new TextEncoder().encode(TEST_JWT_SECRET);
    const withSub = (sub: unknown) =>
      new SignJWT({ sub } as Record<string, unknown>).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).setExpirationTime('1h').sign(key);
    const subjects: unknown[] = [42, ['42'], '042', ' 42', '42 ', '+42', '4.2e1', '42\n', '0x2a', '\u0664\u0662', '', true, null, { id: '42' }, 42.0];
    for (const sub of subjects) {
      const response = await conversations(await withSub(sub));
      expect(response.status, JSON.stringify(sub)).toBe(401);
      expect(response.body['error']).toMatch(/subject/);
    }
    expect((await conversations(await withSub('42'))).status).toBe(200);
  });

  it('refuses a token revoked by Matcha\'s logout (blacklist:<sha256>)', async () => {
    const token = await mintToken(42);
    expect((await conversations(token)).status).toBe(200);
    await main.redis.set(revocationKey(token), '1', 'EX', 60);
    expectUnauthorized(await conversations(token), /revoked/);
  });

  it('requires X-User-ID, when present, to equal the token subject', async () => {
    const token = await mintToken(42);
    expectUnauthorized(await conversations(token, { 'x-user-id': '43' }), /X-User-ID/);
    expect((await conversations(token, { 'x-user-id': '42' })).status).toBe(200);
  });

  it('answers a CORS preflight for a listed origin without a token', async () => {
    const preflight = await fetch(`${strict.url}/api/v1/chat/messages`, {
      method: 'OPTIONS',
      headers: { origin: 'https://matcha.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('https://matcha.example');
    expect(preflight.headers.get('access-control-allow-headers')?.toLowerCase()).toContain('authorization');
  });

  it('answers an unknown route with a 404 envelope', async () => {
    const response = await api(main.url, 'GET', '/nope');
    expect(response.status).toBe(404);
    expect(response.body).toMatchObject({ success: false, code: 'not_found' });
    const underApi = await api(main.url, 'GET', '/api/v1/chat/nope', { token: await mintToken(42) });
    expect(underApi.status).toBe(404);
    expect(underApi.body).toMatchObject({ success: false });
    // The socket's path without an upgrade.
    expect((await api(main.url, 'GET', '/api/v1/chat/ws', { token: await mintToken(42) })).status).toBe(426);
  });
});

describe('one spelling per token', () => {
  it('refuses every other spelling of a valid token, revoked or not, in the Authorization header', async () => {
    const token = await mintToken(44);
    const revoked = await mintToken(44);
    await main.redis.set(revocationKey(revoked), '1', 'EX', 60);
    const statuses: Record<string, number> = {};
    for (const [which, spellings] of [['valid', respellings(token)], ['revoked', respellings(revoked)]] as const) {
      for (const spelling of spellings.filter((candidate) => fitsInHeader(candidate.text))) {
        const response = await api(main.url, 'GET', '/api/v1/chat/conversations', { headers: { authorization: `Bearer ${spelling.text}` } });
        statuses[`${which}, ${spelling.name}`] = response.status;
      }
    }
    // Every spelling at once, so a failure names all that got in.
    expect(Object.entries(statuses).filter(([, status]) => status !== 401)).toEqual([]);
    expect(Object.keys(statuses).length).toBeGreaterThanOrEqual(10);
    expect((await conversations(token)).status).toBe(200);
    expect((await conversations(revoked)).status).toBe(401);
  });

  it('refuses every other spelling of a revoked token on the upgrade, in ?token= and in the header', async () => {
    const revoked = await mintToken(45);
    await main.redis.set(revocationKey(revoked), '1', 'EX', 60);
    const statuses: Record<string, number> = {};
    for (const spelling of respellings(revoked)) {
      statuses[`?token=, ${spelling.name}`] = await upgradeStatus(`${main.wsUrl}?token=${encodeURIComponent(spelling.text)}`);
      if (fitsInHeader(spelling.text)) {
        statuses[`header, ${spelling.name}`] = await upgradeStatus(main.wsUrl, { headers: { authorization: `Bearer ${spelling.text}` } });
      }
    }
    // "+" in a query string is a space: what a naive link builder produces.
    statuses['?token=, trailing +'] = await upgradeStatus(`${main.wsUrl}?token=${revoked}+`);
    const [header, payload, signature] = revoked.split('.') as [string, string, string];
    for (const text of [`${header}=.${payload}.${signature}`, `${revoked}.`, `${header}.${payload}.${signature.replace(/-/g, '+').replace(/_/g, '/')}`]) {
      statuses[`?token=, ${text}`] = await upgradeStatus(`${main.wsUrl}?token=${encodeURIComponent(text)}`);
    }
    expect(Object.entries(statuses).filter(([, status]) => status !== 401)).toEqual([]);
    expect(await upgradeStatus(`${main.wsUrl}?token=${revoked}`)).toBe(401);
    expect(await upgradeStatus(`${main.wsUrl}?token=${await mintToken(45)}`)).toBe(101);
  });
});

describe('WebSocket authentication', () => {
  it('opens with an Authorization header, with ?token= and with a first auth frame, each sending connected once', async () => {
    const token = await mintToken(7);
    const byHeader = await openSocket(main.wsUrl, { token });
    const byQuery = await openSocket(`${main.wsUrl}?token=${token}`);
    const byFrame = await openSocket(main.wsUrl);
    byFrame.send({ type: 'auth', token });
    for (const socket of [byHeader, byQuery, byFrame]) {
      const connected = await socket.waitFor((frame) => frame.type === 'connected');
      expect(connected).toMatchObject({ type: 'connected', data: { user_id: 7, status: 'connected' } });
      expect(typeof connected['timestamp']).toBe('string');
    }
    byHeader.send({ type: 'ping', request_id: 'p1' });
    expect(await byHeader.waitFor((frame) => frame.type === 'pong')).toMatchObject({ type: 'pong', request_id: 'p1' });
    await Promise.all([byHeader, byQuery, byFrame].map((socket) => socket.close()));
    for (const socket of [byHeader, byQuery, byFrame]) {
      expect(socket.frames.filter((frame) => frame.type === 'connected')).toHaveLength(1);
    }
  });

  it('refuses a bad token on the upgrade with HTTP 401 and no socket', async () => {
    expect(await upgradeStatus(main.wsUrl, { token: await mintToken(7, { secret: 'forged' }) })).toBe(401);
    expect(await upgradeStatus(`${main.wsUrl}?token=${unsignedToken(7)}`)).toBe(401);
    expect(await upgradeStatus(`${main.wsUrl}?token=${await mintToken(7, { expiresIn: -120 })}`)).toBe(401);
  });

  it('refuses an Origin outside ALLOWED_ORIGINS with HTTP 403 and accepts a listed one', async () => {
    const token = await mintToken(7);
    expect(await upgradeStatus(strict.wsUrl, { token, origin: 'https://evil.example' })).toBe(403);
    expect(await upgradeRefusal(strict.wsUrl, { authorization: `Bearer ${token}`, origin: 'https://evil.example' })).toEqual({
      status: 403,
      body: { success: false, error: 'origin not allowed', code: 'forbidden' },
    });
    expect(await upgradeStatus(strict.wsUrl, { token, origin: 'https://app.matcha.example' })).toBe(101);
  });

  it('closes with 4401 when no auth frame arrives in time, or the first frame is not a good auth', async () => {
    const silent = await openSocket(strict.wsUrl);
    expect((await silent.closed).code).toBe(4401);

    const wrongFirst = await openSocket(strict.wsUrl);
    wrongFirst.send({ type: 'ping' });
    expect((await wrongFirst.closed).code).toBe(4401);

    const badToken = await openSocket(strict.wsUrl);
    badToken.send({ type: 'auth', token: await mintToken(7, { secret: 'forged' }) });
    const closed = await badToken.closed;
    expect(closed).toMatchObject({ code: 4401 });
    expect(closed.reason).toMatch(/signature/);
  });

  it('closes a socket with 4401 when its token expires, unless an auth frame refreshed it', async () => {
    const expiring = await openSocket(strict.wsUrl, { token: await mintToken(8, { expiresIn: 2 }) });
    const refreshed = await openSocket(strict.wsUrl, { token: await mintToken(8, { expiresIn: 2 }) });
    await refreshed.waitFor((frame) => frame.type === 'connected');
    const ack = await refreshed.request({ type: 'auth', token: await mintToken(8) });
    expect(ack).toMatchObject({ type: 'ack', data: { user_id: 8 } });
    const other = await refreshed.request({ type: 'auth', token: await mintToken(9) });
    expect(other).toMatchObject({ type: 'error', data: { code: 'unauthorized' } });

    expect((await expiring.closed).code).toBe(4401);
    expect(refreshed.ws.readyState).toBe(refreshed.ws.OPEN);
    await refreshed.close();
  });

  it('never writes a token from ?token= to the logs', async () => {
    const good = await mintToken(10);
    const bad = await mintToken(10, { secret: 'forged' });
    const socket = await openSocket(`${main.wsUrl}?token=${good}&since=nonsense`);
    await socket.waitFor((frame) => frame.type === 'error');
    await socket.close();
    await upgradeStatus(`${main.wsUrl}?token=${bad}`);
    await api(main.url, 'GET', `/api/v1/chat/conversations?token=${good}`, { token: good });
    expect(main.logs()).toContain('request'); // the log is being written
    expect(main.logs()).not.toContain(good.split('.')[2]!);
    expect(main.logs()).not.toContain(bad.split('.')[2]!);
  });
});
