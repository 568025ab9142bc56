import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, gatewayEnv, openSocket, startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles } from '../../support/processes.js';

/**
 * The demo page (`/demo`) and its token route exist in development only: a production or test gateway
 * answers 404 there, as for any unknown path. A development gateway serves the page and mints tokens for
 * valid user ids, refusing anything else with the envelope.
 */

const OTHER_ORIGIN = 'https://matcha.example';

let databaseUrl: string;
let prefix: string;
let production: TestGateway;
let testing: TestGateway;
let development: TestGateway;

beforeAll(async () => {
  databaseUrl = await createTestDatabase();
  prefix = testPrefix();
  // ALLOWED_ORIGINS set, so that a socket from the gateway's own origin is refused unless the demo is on.
  const env = { ALLOWED_ORIGINS: OTHER_ORIGIN };
  [production, testing, development] = await Promise.all([
    startTestGateway({ databaseUrl, prefix, env: { ...env, NODE_ENV: 'production' } }),
    startTestGateway({ databaseUrl, prefix, env: { ...env, NODE_ENV: 'test' } }),
    startTestGateway({ databaseUrl, prefix, env: { ...env, NODE_ENV: 'development' } }),
  ]);
});
afterAll(async () => {
  await Promise.all([production?.close(), testing?.close(), development?.close()]);
  await stopAllRoles();
});

/**
 * `POST /demo/token` with `body` (JSON unless a string). Not through `api()`: the demo is no part of the API
 * contract (docs/openapi.yaml), so its answers are checked here rather than against that document.
 */
async function postDemoToken(url: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const response = await fetch(`${url}/demo/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

/** A gateway process (as the image runs it, bar the compiling) that fails any import of esbuild; its URL. */
async function gatewayForbiddingEsbuild(nodeEnv: string): Promise<{ url: string; output: () => string }> {
  const gateway = await spawnRole({
    name: `gateway-${nodeEnv}`,
    entry: 'src/gateway/main.ts',
    env: { ...gatewayEnv({ databaseUrl, prefix }), NODE_ENV: nodeEnv, PORT: '0' },
    preload: ['test/support/forbid-esbuild.mjs'],
  });
  const listening = await gateway.waitForOutput(/"port":\d+[^\n]*gateway listening/, 60_000);
  return { url: `http://127.0.0.1:${/"port":(\d+)/.exec(listening)![1]}`, output: () => gateway.output() };
}

describe('outside development', () => {
  it.each([
    ['production', () => production],
    ['test', () => testing],
  ])('a %s gateway has no /demo routes', async (_name, gateway) => {
    const { url } = gateway();
    for (const path of ['/demo', '/demo/', '/demo/demo.js', '/demo/demo.css']) {
      const answer = await api(url, 'GET', path);
      expect(answer.status, path).toBe(404);
      expect(answer.body).toMatchObject({ success: false, code: 'not_found' });
    }
    const token = await postDemoToken(url, { user_id: 42 });
    expect(token.status).toBe(404);
    expect(token.body).toMatchObject({ success: false, code: 'not_found' });
    expect(gateway().logs()).not.toMatch(/demo page bundled/);
  });

  it('a production gateway never imports esbuild, also when asked for the demo\'s script', async () => {
    const gateway = await gatewayForbiddingEsbuild('production');
    for (const path of ['/demo', '/demo/demo.js']) expect((await api(gateway.url, 'GET', path)).status, path).toBe(404);
    expect((await api(gateway.url, 'GET', '/health')).status).toBe(200);
    expect(gateway.output()).not.toMatch(/esbuild/);
    // The same guard bites where esbuild is used: a development gateway cannot bundle the page under it.
    const bundling = await gatewayForbiddingEsbuild('development');
    expect((await api(bundling.url, 'GET', '/demo/demo.js')).status).toBe(500);
    expect(bundling.output()).toMatch(/forbidden import of esbuild/);
  });

  it('a production gateway refuses a socket from its own origin when ALLOWED_ORIGINS does not list it', async () => {
    await expect(openSocket(production.wsUrl, { origin: production.url })).rejects.toThrow(/403/);
  });
});

describe('in development', () => {
  it('mints a token that the API accepts for that user', async () => {
    const answer = await postDemoToken(development.url, { user_id: 42 });
    expect(answer.status).toBe(200);
    const data = answer.body['data'] as { user_id: number; token: string; expires_at: string };
    expect(data.user_id).toBe(42);
    expect(Date.parse(data.expires_at) - Date.now()).toBeGreaterThan(50 * 60_000);
    expect(Date.parse(data.expires_at) - Date.now()).toBeLessThanOrEqual(60 * 60_000);

    const started = await api(development.url, 'POST', '/api/v1/chat/conversations', { token: data.token, body: { user_id: 43 } });
    expect(started.status).toBe(201);
    expect(started.body['data']).toMatchObject({ user1_id: 42, user2_id: 43 });
  });

  it.each([
    ['no user_id', {}, 'invalid_request', /user_id is required/],
    ['a string', { user_id: '42' }, 'invalid_request', /user_id/],
    ['zero', { user_id: 0 }, 'invalid_request', /user_id: must be positive/],
    ['a negative id', { user_id: -3 }, 'invalid_request', /user_id: must be positive/],
    ['a fraction', { user_id: 4.5 }, 'invalid_request', /user_id/],
    ['not JSON', '{"user_id":', 'invalid_json', /not valid JSON/],
    ['an empty body', '', 'invalid_json', /JSON object/],
  ])('refuses %s with a 400 envelope', async (_name, body, code, message) => {
    const answer = await postDemoToken(development.url, body);
    expect(answer.status).toBe(400);
    expect(answer.body).toMatchObject({ success: false, code });
    expect(answer.body['error']).toMatch(message);
    expect(answer.body).not.toHaveProperty('data');
  });

  it('serves the page with a same-origin Content-Security-Policy, and its styles', async () => {
    const page = await fetch(`${development.url}/demo`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.headers.get('content-security-policy')).toMatch(/connect-src 'self'/);
    expect(await page.text()).toContain('<script type="module" src="/demo/demo.js"></script>');
    const slashed = await fetch(`${development.url}/demo/`, { redirect: 'manual' });
    expect(slashed.status).toBe(302);
    expect(slashed.headers.get('location')).toBe('/demo');
    const styles = await fetch(`${development.url}/demo/demo.css`);
    expect(styles.status).toBe(200);
    expect(styles.headers.get('content-type')).toMatch(/^text\/css/);
  });

  it('accepts a socket from its own origin, as the page opens it, and still refuses other origins', async () => {
    const socket = await openSocket(development.wsUrl, { origin: development.url });
    await socket.close();
    await expect(openSocket(development.wsUrl, { origin: 'https://elsewhere.example' })).rejects.toThrow(/403/);
  });
});
