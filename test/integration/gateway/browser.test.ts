import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type Page } from 'playwright-core';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startConversation } from '../../../src/commands/conversation/conversation-commands.js';
import { mintToken, openSocket, startTestGateway, type TestGateway } from '../../support/gateway.js';
import { createTestDatabase, testPrefix, testRoleEnv } from '../../support/infra.js';
import { spawnRole, stopAllRoles } from '../../support/processes.js';

/**
 * A real browser (Debian's chromium, headless, driven by playwright-core) on a page served by this test,
 * talking to a gateway whose ALLOWED_ORIGINS is that page's origin. Browsers cannot set headers on a
 * WebSocket, so the page authenticates with a first `auth` frame, and with `?token=`.
 */

const CHROMIUM = '/usr/bin/chromium';
const ALICE = 301;
const BOB = 302;

/** The page: opens sockets and keeps every frame, for the test to inspect. */
const PAGE = `<!doctype html>
<html><head><meta charset="utf-8"><title>chat test page</title></head><body>
<script>
  window.chats = [];
  window.openChat = (url, token, firstFrameAuth) => {
    const chat = { frames: [], closed: null };
    const ws = new WebSocket(firstFrameAuth ? url : url + '?token=' + encodeURIComponent(token));
    ws.onopen = () => { if (firstFrameAuth) ws.send(JSON.stringify({ type: 'auth', token })); };
    ws.onmessage = (event) => chat.frames.push(JSON.parse(event.data));
    ws.onclose = (event) => { chat.closed = event.code; };
    chat.ws = ws;
    window.chats.push(chat);
    return window.chats.length - 1;
  };
  window.send = (index, frame) => window.chats[index].ws.send(JSON.stringify(frame));
  window.framesOf = (index) => window.chats[index].frames;
</script>
</body></html>`;

let gateway: TestGateway;
let pageServer: Server;
let origin: string;
let browser: Browser;
let page: Page;
let conversationId: string;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  const env = {
    ...testRoleEnv({ databaseUrl, prefix }),
    LOG_LEVEL: 'info',
    // Roles' operator ports: any free one, as test files run side by side.
    OPS_PORT: '0',
  };
  const relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
  const fanout = await spawnRole({ name: 'fanout', entry: 'src/fanout/main.ts', env });

  pageServer = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(PAGE);
  });
  await new Promise<void>((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(pageServer.address() as AddressInfo).port}`;
  gateway = await startTestGateway({ databaseUrl, prefix, env: { ALLOWED_ORIGINS: origin } });

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  page = await browser.newPage();
  await page.goto(origin);

  await relay.waitForOutput(/leadership acquired/);
  await fanout.waitForOutput(/fanning out/);
  const deps = { pool: gateway.pool, clock: () => new Date(), newId: monotonicFactory() };
  conversationId = (await startConversation(deps, { initiatorId: ALICE, otherUserId: BOB })).conversationId;
}, 120_000);
afterAll(async () => {
  await browser?.close();
  await gateway?.close();
  await new Promise((resolve) => pageServer?.close(resolve));
  await stopAllRoles();
});

type PageFrame = { type: string; request_id?: string; data?: Record<string, unknown> };
const framesOf = (index: number) => page.evaluate((i) => (globalThis as unknown as { framesOf(i: number): PageFrame[] }).framesOf(i), index);

async function waitForFrame(index: number, match: (frame: PageFrame) => boolean): Promise<PageFrame> {
  let found: PageFrame | undefined;
  await expect
    .poll(async () => (found = (await framesOf(index)).find(match)), { timeout: 10_000, interval: 50 })
    .toBeDefined();
  return found!;
}

describe('a browser page', () => {
  it('connects with first-frame auth and with ?token=, sends, and receives the other user\'s message', async () => {
    const token = await mintToken(ALICE);
    const byFrame = await page.evaluate(
      ([url, t]) => (globalThis as unknown as { openChat(u: string, t: string, f: boolean): number }).openChat(url, t, true),
      [gateway.wsUrl, token] as const,
    );
    const byQuery = await page.evaluate(
      ([url, t]) => (globalThis as unknown as { openChat(u: string, t: string, f: boolean): number }).openChat(url, t, false),
      [gateway.wsUrl, token] as const,
    );
    for (const index of [byFrame, byQuery]) {
      expect(await waitForFrame(index, (frame) => frame.type === 'connected')).toMatchObject({ data: { user_id: ALICE } });
    }

    const bob = await openSocket(gateway.wsUrl, { token: await mintToken(BOB) });
    await bob.waitFor((frame) => frame.type === 'connected');

    await page.evaluate(
      ([index, id]) =>
        (globalThis as unknown as { send(i: number, f: object): void }).send(index, {
          type: 'send_message',
          request_id: 'from-browser',
          conversation_id: id,
          content: 'hello from chromium',
        }),
      [byFrame, conversationId] as const,
    );
    expect(await waitForFrame(byFrame, (frame) => frame.request_id === 'from-browser')).toMatchObject({ type: 'ack' });
    expect(await bob.waitFor((frame) => frame.type === 'new_message')).toMatchObject({ data: { sender_id: ALICE, message: 'hello from chromium' } });

    expect(await bob.request({ type: 'send_message', conversation_id: conversationId, content: 'hello browser' })).toMatchObject({ type: 'ack' });
    for (const index of [byFrame, byQuery]) {
      const received = await waitForFrame(index, (frame) => frame.type === 'new_message' && frame.data?.['sender_id'] === BOB);
      expect(received.data).toMatchObject({ message: 'hello browser' });
    }
    await bob.close();
  });
});
