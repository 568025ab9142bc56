import { readdir, readFile, rm, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from 'nats';
import { sql, type DatabasePool } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createDatabasePool } from '../../../src/shared/database.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { startNatsServer, type NatsServer } from '../../../stack/nats-server.js';
import { streamMessagesHolding, tablesHolding, uniqueText } from '../../support/erased-text.js';
import { api, gatewayEnv, mintToken } from '../../support/gateway.js';
import { createTestDatabase, natsUsers, testPrefix, testStreamName } from '../../support/infra.js';
import { connectTestNats, readAllStored } from '../../support/jetstream.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * Delete for everyone through the real roles, from outside: REST on a gateway process, the relay as a
 * process, on a nats-server of this file (so that "every stream" is this file's, and its store directory
 * can be searched byte for byte), each role logged in as its own user.
 */

const A = 801;
const B = 802;
const STRANGER = 803;
let root: string;
let nats: NatsServer;
let nc: NatsConnection;
let pool: DatabasePool;
let env: Record<string, string>;
let stream: string;
let baseUrl: string;
let relay: RoleProcess | null = null;
let conversationId: string;
const tokens = new Map<number, string>();

async function startRelay(): Promise<void> {
  relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
  await relay.waitForOutput(/leadership acquired/, 90_000);
}

async function stopRelay(): Promise<void> {
  await relay?.stop();
  relay = null;
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'matcha-erasure-'));
  const [natsPort, gatewayPort] = await getFreePorts(2);
  nats = await startNatsServer({ storeDir: path.join(root, 'nats'), port: natsPort!, users: natsUsers() });
  nc = await connectTestNats(nats.url);
  const databaseUrl = await createTestDatabase();
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 4 });
  const prefix = testPrefix();
  stream = testStreamName(prefix);
  env = { ...gatewayEnv({ databaseUrl, prefix }), NATS_URL: nats.url, RELAY_POLL_INTERVAL_MS: '200' };
  const gateway = await spawnRole({ name: 'gateway', entry: 'src/gateway/main.ts', env: { ...env, PORT: String(gatewayPort) } });
  await startRelay();
  await gateway.waitForOutput(/gateway listening/, 90_000);
  baseUrl = `http://127.0.0.1:${gatewayPort}`;
  for (const user of [A, B, STRANGER]) tokens.set(user, await mintToken(user));
  const created = await api(baseUrl, 'POST', '/api/v1/chat/conversations', { token: tokens.get(A)!, body: { user_id: B } });
  expect(created.status).toBe(201);
  conversationId = (created.body['data'] as { id: string }).id;
}, 240_000);

afterAll(async () => {
  await stopAllRoles();
  await nc?.close();
  await pool?.end();
  await nats?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

async function send(text: string, from = A): Promise<string> {
  const sent = await api(baseUrl, 'POST', '/api/v1/chat/messages', { token: tokens.get(from)!, body: { conversation_id: conversationId, message: text } });
  expect(sent.status).toBe(201);
  return (sent.body['data'] as { id: string }).id;
}

const deleteMessage = (messageId: string, user = A) => api(baseUrl, 'DELETE', `/api/v1/chat/messages/${encodeURIComponent(messageId)}`, { token: tokens.get(user)! });

const doneRow = z.object({ done: z.boolean() });

/** The barrier: the relay marked the message's erasure done in the stream, after deleting its copies. */
async function erasedFromStream(messageId: string): Promise<void> {
  await waitUntil(`the relay erasing ${messageId} from the stream`, () =>
    pool.oneFirst(sql.type(doneRow)`
      SELECT coalesce(bool_and(x.jetstream_erased_at IS NOT NULL), false) AS done
      FROM event_erasures AS x JOIN events AS e ON e.event_id = x.event_id
      WHERE e.data ->> 'message_id' = ${messageId} AND e.type = 'MessageSent'`),
  { timeoutMs: 60_000 });
}

async function published(text: string): Promise<void> {
  await waitUntil(`"${text}" in the stream`, async () => (await streamMessagesHolding(nc, text)).length > 0, { timeoutMs: 60_000 });
}

/** Files of nats-server's store directory holding `text` as bytes (the stream's blocks, indexes, state). */
async function storeFilesHolding(text: string): Promise<string[]> {
  const needle = Buffer.from(text);
  const holding: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(file);
      else if ((await readFile(file)).includes(needle)) holding.push(path.relative(root, file));
    }
  };
  await walk(path.join(root, 'nats'));
  return holding;
}

/** Nowhere in JetStream: no message of any stream, no byte of the store directory. */
async function expectGoneFromJetStream(text: string): Promise<void> {
  expect(await streamMessagesHolding(nc, text)).toEqual([]);
  expect(await storeFilesHolding(text)).toEqual([]);
}

describe('DELETE /api/v1/chat/messages/:id', () => {
  it('answers the sender with {id, conv_id, deleted_at}, again the same; 403 to the other participant; 404 to a stranger, a missing or malformed id', async () => {
    const text = uniqueText('answers');
    const messageId = await send(text);
    const first = await deleteMessage(messageId);
    expect(first.status).toBe(200);
    const answer = first.body['data'] as Record<string, unknown>;
    expect(Object.keys(answer).sort()).toEqual(['conv_id', 'deleted_at', 'id']);
    expect(answer).toMatchObject({ id: messageId, conv_id: conversationId });
    expect(new Date(answer['deleted_at'] as string).toISOString()).toBe(answer['deleted_at']);
    const again = await deleteMessage(messageId);
    expect({ status: again.status, data: again.body['data'] }).toEqual({ status: 200, data: answer });
    // A retry of the deleted message's send answers the message, its text erased.
    const keyed = uniqueText('keyed');
    const sent = await api(baseUrl, 'POST', '/api/v1/chat/messages', {
      token: tokens.get(A)!,
      body: { conversation_id: conversationId, message: keyed, client_msg_id: 'retry-after-delete' },
    });
    const keyedId = (sent.body['data'] as { id: string }).id;
    expect((await deleteMessage(keyedId)).status).toBe(200);
    const retry = await api(baseUrl, 'POST', '/api/v1/chat/messages', {
      token: tokens.get(A)!,
      body: { conversation_id: conversationId, message: keyed, client_msg_id: 'retry-after-delete' },
    });
    expect({ status: retry.status, data: retry.body['data'] }).toMatchObject({ status: 200, data: { id: keyedId, msg: null } });
    expect(JSON.stringify(retry.body)).not.toContain(keyed);

    const other = await deleteMessage(await send(uniqueText('from B'), B), A);
    expect(other.status).toBe(403);
    expect(JSON.stringify(other.body)).toMatch(/forbidden/);
    for (const [user, id] of [
      [STRANGER, messageId],
      [A, '01ARZ3NDEKTSV4RRFFQ69G5FAV'],
      [A, 'not-a-message'],
    ] as const) {
      const refused = await deleteMessage(id, user);
      expect({ user, id, status: refused.status }).toEqual({ user, id, status: 404 });
      expect(JSON.stringify(refused.body)).toMatch(/not_found/);
    }
  });

  it('erases a published text from every JetStream stream and the store directory once the relay passed the delete', async () => {
    const text = uniqueText('published then deleted');
    const messageId = await send(text);
    await published(text);
    expect(await storeFilesHolding(text)).not.toEqual([]);
    expect((await deleteMessage(messageId)).status).toBe(200);
    await erasedFromStream(messageId);
    await expectGoneFromJetStream(text);
    const types = (await readAllStored(nc, stream)).filter((message) => message.data['message_id'] === messageId).map((message) => message.type);
    expect(types).toEqual(['MessageDeleted']);
  });

  it('erases it when the relay was stopped while the delete happened, once it is started again', async () => {
    const text = uniqueText('relay stopped at the delete');
    const messageId = await send(text);
    await published(text);
    await stopRelay();
    expect((await deleteMessage(messageId)).status).toBe(200);
    // Nobody else deletes from the stream: the text is still there until the relay comes back.
    expect(await streamMessagesHolding(nc, text)).toHaveLength(1);
    await startRelay();
    await erasedFromStream(messageId);
    await expectGoneFromJetStream(text);
  });

  it('never publishes the text of a message deleted before the relay published it', async () => {
    await stopRelay();
    const text = uniqueText('deleted before published');
    const messageId = await send(text);
    expect((await deleteMessage(messageId)).status).toBe(200);
    await startRelay();
    await erasedFromStream(messageId);
    await expectGoneFromJetStream(text);
    const types = (await readAllStored(nc, stream)).filter((message) => message.data['message_id'] === messageId).map((message) => message.type);
    expect(types).toEqual(['MessageDeleted']);
    // The write side keeps no text either (the read tables are the projector's, not running here).
    expect(await tablesHolding(pool, text)).toEqual([]);
    expect(relay?.output()).not.toMatch(/violation/i);
  });
});

// Needs the projection of MessageDeleted (the read side's tombstones): the read tables must lose the text too.
describe('with the projector', () => {
  it('leaves the text in no table of the database, and replay --verify finds the rebuilt read tables equal', async () => {
    const projector = await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env });
    await projector.waitForOutput(/projecting/, 90_000);
    const text = uniqueText('in no table');
    const messageId = await send(text);
    const page = () => api(baseUrl, 'GET', `/api/v1/chat/conversations/${conversationId}/messages?limit=50`, { token: tokens.get(B)! });
    // Reads wait for the read tables to reach the log (read consistency): the message is projected.
    expect(JSON.stringify((await page()).body)).toContain(text);
    expect((await deleteMessage(messageId)).status).toBe(200);
    const tombstones = await page();
    expect(tombstones.status).toBe(200);
    expect((tombstones.body['data'] as { id: string; msg: string | null }[]).find((message) => message.id === messageId)).toMatchObject({ msg: null });
    await erasedFromStream(messageId);
    expect(await tablesHolding(pool, text)).toEqual([]);
    await expectGoneFromJetStream(text);

    const replay = await spawnRole({ name: 'replay', entry: 'src/replay/main.ts', env, args: ['--verify'] });
    expect(await replay.exited, replay.output()).toBe(0);
    expect(replay.output()).toMatch(/verify: discussion: 0 rows differ; messages: 0 rows differ/);
    expect(await tablesHolding(pool, text)).toEqual([]);
  });
});

describe('tombstones', () => {
  type PageMessage = { id: string; msg: string | null; deleted_at: string | null; seq: number };
  type ListedConversation = { id: string; last_message_content: string | null };

  /** Every message of the conversation as `user` pages through it, `limit` at a time, by `before` or by `offset`. */
  async function allPages(user: number, conversation: string, by: 'before' | 'offset', limit = 2): Promise<PageMessage[]> {
    const messages: PageMessage[] = [];
    for (;;) {
      const cursor = by === 'before' ? (messages.length > 0 ? `&before=${messages.at(-1)!.id}` : '') : `&offset=${messages.length}`;
      const page = await api(baseUrl, 'GET', `/api/v1/chat/conversations/${conversation}/messages?limit=${limit}${cursor}`, { token: tokens.get(user)! });
      expect(page.status, JSON.stringify(page.body)).toBe(200);
      const data = page.body['data'] as PageMessage[];
      messages.push(...data);
      if (data.length < limit) return messages;
    }
  }

  it('keep each deleted message in its place in every page of both users, and out of last_message_content', async () => {
    // A conversation of its own, so that the pages hold exactly these messages.
    const [first, second] = [811, 812];
    for (const user of [first, second]) tokens.set(user, await mintToken(user));
    const created = await api(baseUrl, 'POST', '/api/v1/chat/conversations', { token: tokens.get(first)!, body: { user_id: second } });
    const conversation = (created.body['data'] as { id: string }).id;
    const texts = Array.from({ length: 7 }, (_, index) => uniqueText(`page text ${index}`));
    const ids: string[] = [];
    for (const [index, text] of texts.entries()) {
      const sent = await api(baseUrl, 'POST', '/api/v1/chat/messages', {
        token: tokens.get(index % 2 === 0 ? first : second)!,
        body: { conversation_id: conversation, message: text },
      });
      expect(sent.status).toBe(201);
      ids.push((sent.body['data'] as { id: string }).id);
    }
    // Deleted by their senders: the first, one in the middle, and the last (the one the list shows).
    const deleted = new Set([0, 3, 6]);
    for (const index of deleted) {
      const answer = await api(baseUrl, 'DELETE', `/api/v1/chat/messages/${ids[index]!}`, { token: tokens.get(index % 2 === 0 ? first : second)! });
      expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    }

    for (const user of [first, second]) {
      for (const by of ['before', 'offset'] as const) {
        const seen = await allPages(user, conversation, by);
        // Newest first, every message in its place, tombstones included.
        expect(seen.map((message) => message.id), `${user} by ${by}`).toEqual([...ids].reverse());
        for (const message of seen) {
          const index = ids.indexOf(message.id);
          if (deleted.has(index)) {
            expect(message, `${user} by ${by}`).toMatchObject({ msg: null, deleted_at: expect.any(String) as unknown });
          } else {
            expect(message, `${user} by ${by}`).toMatchObject({ msg: texts[index], deleted_at: null });
          }
        }
      }
      const conversationAnswer = await api(baseUrl, 'GET', `/api/v1/chat/conversations/${conversation}`, { token: tokens.get(user)! });
      const listed = await api(baseUrl, 'GET', '/api/v1/chat/conversations', { token: tokens.get(user)! });
      const shown = [conversationAnswer.body['data'] as ListedConversation, (listed.body['data'] as ListedConversation[]).find((row) => row.id === conversation)!];
      for (const row of shown) {
        expect(texts.filter((_, index) => deleted.has(index))).not.toContain(row.last_message_content);
      }
    }
  });
});
