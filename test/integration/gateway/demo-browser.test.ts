import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Locator, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getFreePort } from '../../../stack/free-port.js';
import { api, gatewayEnv, mintToken } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';

/**
 * Two people on the demo page (`/demo`, a development gateway), each in their own browser context of
 * Debian's chromium: they start a conversation, see unread badges, typing and read receipts, chat both
 * ways; the gateway process is SIGKILLed mid-conversation and started again on the same port, and both
 * pages come back showing every message once, in the log's order, the one typed while offline included;
 * then a delete and a block reach the other page. The relay, projector, fan-out and gateway run as
 * processes, as under `npm start`. The page's screenshot in the README comes from here (docs/demo.png).
 */

const CHROMIUM = '/usr/bin/chromium';
const SCREENSHOT = fileURLToPath(new URL('../../../docs/demo.png', import.meta.url));
const ALICE = 1501;
const BOB = 1502;
/** Browser steps wait on the page's own state; this bounds each under a loaded two-core machine. */
const STEP_MS = 30_000;
/** A reconnect after a restart: the gateway's startup plus the client's backoff. */
const RECONNECT_MS = 90_000;

let gatewayProcess: RoleProcess;
let gatewayRoleEnv: Record<string, string>;
let url: string;
let browser: Browser;
let alice: Page;
let bob: Page;
/** Every text sent, in the order each was typed. */
const sent: string[] = [];

async function startGatewayProcess(): Promise<RoleProcess> {
  const gateway = await spawnRole({ name: 'gateway', entry: 'src/gateway/main.ts', env: gatewayRoleEnv });
  await gateway.waitForOutput(/gateway listening/, 60_000);
  return gateway;
}

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium`);
  const databaseUrl = await createTestDatabase();
  const env = { ...gatewayEnv({ databaseUrl, prefix: testPrefix() }), LOG_LEVEL: 'info' };
  const port = await getFreePort();
  gatewayRoleEnv = {
    ...env,
    NODE_ENV: 'development',
    PORT: String(port),
    // Set, and not to this origin: the page's own socket is same-origin, which the demo allows.
    ALLOWED_ORIGINS: 'https://matcha.example',
    // A killed gateway's socket leases would keep a user online for 45 s; presence is not what is tested here.
    PRESENCE_OFFLINE_GRACE_MS: '1000',
  };
  url = `http://127.0.0.1:${port}`;
  const relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
  const projector = await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env });
  const fanout = await spawnRole({ name: 'fanout', entry: 'src/fanout/main.ts', env });
  gatewayProcess = await startGatewayProcess();
  await relay.waitForOutput(/leadership acquired/, 60_000);
  await projector.waitForOutput(/projecting/, 60_000);
  await fanout.waitForOutput(/fanning out/, 60_000);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox'] });
  const viewport = { width: 1000, height: 620 };
  alice = await (await browser.newContext({ viewport })).newPage();
  bob = await (await browser.newContext({ viewport })).newPage();
}, 180_000);
afterAll(async () => {
  await browser?.close();
  await stopAllRoles();
});

const byTestId = (page: Page, id: string): Locator => page.locator(`[data-testid="${id}"]`);
const messageItem = (page: Page, text: string): Locator => byTestId(page, 'message').filter({ has: page.getByText(text, { exact: true }) });
const conversationItem = (page: Page, partner: number): Locator => page.locator(`[data-testid="conversation-item"][data-partner-id="${partner}"]`);

async function waitForText(locator: Locator, text: string | RegExp, timeout = STEP_MS): Promise<void> {
  await locator.filter({ hasText: text }).first().waitFor({ timeout });
}

async function waitForState(page: Page, state: string, timeout = STEP_MS): Promise<void> {
  await page.locator(`[data-testid="connection-state"][data-state="${state}"]`).waitFor({ timeout });
}

/** Types `text` key by key (as a person does: the page sends typing signals) and sends it. */
async function send(page: Page, text: string, options: { readonly viaKeys?: boolean } = {}): Promise<void> {
  const input = byTestId(page, 'message-input');
  if (options.viaKeys) await input.pressSequentially(text);
  else await input.fill(text);
  await byTestId(page, 'send-button').click();
  sent.push(text);
}

type ShownMessage = { id: string | null; text: string; state: string };

/** The page's message list, top to bottom. */
function shownMessages(page: Page): Promise<ShownMessage[]> {
  return page.evaluate(`[...document.querySelectorAll('[data-testid="message"]')].map((item) => ({
    id: item.getAttribute('data-message-id'),
    text: item.querySelector('[data-testid="message-text"]').textContent,
    state: item.getAttribute('data-state'),
  }))`);
}

describe('the demo page, two users in two browser windows', () => {
  it('signs in (form and ?user=), starts a conversation that appears on the other page, and shows presence', async () => {
    await alice.goto(`${url}/demo`);
    await byTestId(alice, 'user-id-input').fill(String(ALICE));
    await byTestId(alice, 'sign-in-button').click();
    await bob.goto(`${url}/demo?user=${BOB}`);
    await waitForState(alice, 'open');
    await waitForState(bob, 'open');
    expect(await byTestId(alice, 'me').textContent()).toBe(`user ${ALICE}`);

    await byTestId(alice, 'partner-id-input').fill(String(BOB));
    await byTestId(alice, 'start-conversation-button').click();
    await waitForText(byTestId(alice, 'thread-partner'), `user ${BOB}`);
    await conversationItem(bob, ALICE).waitFor({ timeout: STEP_MS });
    await waitForText(byTestId(alice, 'presence'), 'online');
  });

  it('shows an unread badge, then a read receipt once the other opens the conversation, and typing', async () => {
    await send(alice, 'hello bob');
    await messageItem(alice, 'hello bob').and(alice.locator('[data-state="sent"]')).waitFor({ timeout: STEP_MS });
    await waitForText(conversationItem(bob, ALICE).locator('[data-testid="unread-badge"]'), '1');
    await waitForText(conversationItem(bob, ALICE).locator('[data-testid="last-message"]'), 'hello bob');

    await conversationItem(bob, ALICE).click();
    await messageItem(bob, 'hello bob').waitFor({ timeout: STEP_MS });
    await conversationItem(bob, ALICE).locator('[data-testid="unread-badge"]').waitFor({ state: 'detached', timeout: STEP_MS });
    await messageItem(alice, 'hello bob').and(alice.locator('[data-state="read"]')).waitFor({ timeout: STEP_MS });
    await waitForText(messageItem(alice, 'hello bob').locator('[data-testid="read-receipt"]'), 'read');
    await waitForText(byTestId(bob, 'presence'), 'online');

    await byTestId(bob, 'message-input').pressSequentially('hi al');
    await waitForText(byTestId(alice, 'typing-indicator'), `user ${BOB} is typing`);
    await byTestId(bob, 'message-input').fill('');
    await send(bob, 'hi alice, typing works', { viaKeys: true });
    await messageItem(alice, 'hi alice, typing works').waitFor({ timeout: STEP_MS });
    await byTestId(alice, 'typing-indicator').waitFor({ state: 'hidden', timeout: STEP_MS });
  });

  it('chats both ways, messages sent back to back arriving on both pages', async () => {
    for (let round = 1; round <= 3; round++) {
      await send(alice, `alice ${round}`);
      await send(bob, `bob ${round}`);
    }
    for (const page of [alice, bob]) {
      for (let round = 1; round <= 3; round++) {
        await messageItem(page, `alice ${round}`).waitFor({ timeout: STEP_MS });
        await messageItem(page, `bob ${round}`).waitFor({ timeout: STEP_MS });
      }
    }
  });

  it('survives the gateway SIGKILLed mid-conversation: both pages reconnect, every message once, in order; one typed offline is delivered once', async () => {
    // Sent, and the gateway killed before the page can know whether it was taken: the client retries it.
    await send(alice, 'in flight at the kill');
    gatewayProcess.kill('SIGKILL');
    await gatewayProcess.exited;
    await waitForState(alice, 'reconnecting');
    await waitForState(bob, 'reconnecting');

    await send(bob, 'typed while offline');
    await messageItem(bob, 'typed while offline').and(bob.locator('[data-state="pending"]')).waitFor({ timeout: STEP_MS });

    gatewayProcess = await startGatewayProcess();
    await waitForState(alice, 'open', RECONNECT_MS);
    await waitForState(bob, 'open', RECONNECT_MS);
    await messageItem(bob, 'typed while offline').and(bob.locator('[data-state="read"], [data-state="sent"]')).waitFor({ timeout: STEP_MS });
    await messageItem(alice, 'typed while offline').waitFor({ timeout: STEP_MS });

    // The barrier: a message after everything else, on the same ordered path; once it shows, nothing else is on the way.
    await send(bob, 'after the restart');
    await messageItem(alice, 'after the restart').waitFor({ timeout: STEP_MS });
    await messageItem(bob, 'after the restart').and(bob.locator('[data-state="read"], [data-state="sent"]')).waitFor({ timeout: STEP_MS });

    const token = await mintToken(ALICE);
    const conversations = await api(url, 'GET', '/api/v1/chat/conversations', { token });
    const [conversation] = conversations.body['data'] as { id: string }[];
    const page = await api(url, 'GET', `/api/v1/chat/conversations/${conversation!.id}/messages?limit=100`, { token });
    const logged = (page.body['data'] as { id: string; msg: string; seq: number }[]).reverse();
    expect(logged.map((message) => message.msg).sort()).toEqual([...sent].sort());

    for (const shown of [await shownMessages(alice), await shownMessages(bob)]) {
      expect(shown.map(({ id, text }) => ({ id, text }))).toEqual(logged.map(({ id, msg }) => ({ id, text: msg })));
      expect(shown.filter((message) => message.state === 'pending' || message.state === 'failed')).toEqual([]);
    }
  });

  it('takes the README screenshot: read receipts, the list, the partner typing', async () => {
    await byTestId(bob, 'message-input').pressSequentially('see you');
    await waitForText(byTestId(alice, 'typing-indicator'), `user ${BOB} is typing`);
    await alice.screenshot({ path: SCREENSHOT });
    await byTestId(bob, 'message-input').fill('');
  });

  it('shows a deleted message as a tombstone on the other page, and a block and unblock', async () => {
    await messageItem(alice, 'hello bob').locator('[data-testid="delete-button"]').click();
    for (const page of [bob, alice]) {
      await messageItem(page, 'message deleted').and(page.locator('[data-state="deleted"]')).waitFor({ timeout: STEP_MS });
      await messageItem(page, 'hello bob').waitFor({ state: 'detached', timeout: STEP_MS });
    }

    await byTestId(bob, 'block-button').click();
    await waitForText(byTestId(bob, 'block-button'), /^Unblock$/);
    await waitForText(byTestId(bob, 'blocked-notice'), `You blocked user ${ALICE}`);
    await conversationItem(alice, BOB).waitFor({ state: 'detached', timeout: STEP_MS });
    await byTestId(alice, 'thread').waitFor({ state: 'hidden', timeout: STEP_MS });

    await byTestId(bob, 'block-button').click();
    await waitForText(byTestId(bob, 'block-button'), /^Block$/);
    await byTestId(bob, 'blocked-notice').waitFor({ state: 'hidden', timeout: STEP_MS });
    await conversationItem(alice, BOB).waitFor({ timeout: STEP_MS });
  });

  it('pages older messages with `before`, a few at a time, in a third window, up to the first', async () => {
    const third = await (await browser.newContext()).newPage();
    await third.goto(`${url}/demo?user=${ALICE}&page_size=4`);
    await conversationItem(third, BOB).click();
    await expect.poll(async () => (await shownMessages(third)).length, { timeout: STEP_MS }).toBe(4);

    const token = await mintToken(ALICE);
    const conversationId = await conversationItem(third, BOB).getAttribute('data-conversation-id');
    const page = await api(url, 'GET', `/api/v1/chat/conversations/${conversationId}/messages?limit=100`, { token });
    const logged = (page.body['data'] as { id: string; msg: string | null }[]).reverse();
    expect(logged.length).toBeGreaterThan(8);
    for (let shown = 4; shown < logged.length; shown += 4) {
      await byTestId(third, 'older-button').click();
      const expected = Math.min(shown + 4, logged.length);
      await expect.poll(async () => (await shownMessages(third)).length, { timeout: STEP_MS }).toBe(expected);
    }
    // A last page as long as the others does not tell that it was the last: one more, empty, does.
    if (logged.length % 4 === 0) await byTestId(third, 'older-button').click();
    await byTestId(third, 'older-button').waitFor({ state: 'hidden', timeout: STEP_MS });
    expect((await shownMessages(third)).map(({ id, text }) => ({ id, text }))).toEqual(
      logged.map(({ id, msg }) => ({ id, text: msg ?? 'message deleted' })),
    );
  });
});
