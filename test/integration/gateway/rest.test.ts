import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, mintToken, openSocket, startTestGateway, type ApiResponse, type TestGateway } from '../../support/gateway.js';
import { createTestDatabase, testPrefix, testRoleEnv } from '../../support/infra.js';
import { spawnRole, stopAllRoles } from '../../support/processes.js';

/**
 * The REST contract of API.md against a gateway in this process, with the real relay and projector running
 * as processes: every read goes through the projection, and the read-consistency wait is what makes it fresh.
 */

let gateway: TestGateway;
/** Same database and Redis prefix, with a rate limit of 3 messages a minute. */
let limited: TestGateway;
const tokens = new Map<number, string>();
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  const roleEnv = {
    ...testRoleEnv({ databaseUrl, prefix }),
    LOG_LEVEL: 'info',
    // Roles' operator ports: any free one, as test files run side by side.
    OPS_PORT: '0',
  };
  const relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env: roleEnv });
  const projector = await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env: roleEnv });
  gateway = await startTestGateway({ databaseUrl, prefix });
  limited = await startTestGateway({ databaseUrl, prefix, env: { RATE_LIMIT_MESSAGES_PER_MINUTE: '3' } });
  await relay.waitForOutput(/leadership acquired/);
  await projector.waitForOutput(/projecting/);
  for (const user of [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 90, 91]) tokens.set(user, await mintToken(user));
});
afterAll(async () => {
  await Promise.all([gateway?.close(), limited?.close()]);
  await stopAllRoles();
});

const as = (userId: number) => {
  const token = tokens.get(userId)!;
  return {
    get: (path: string) => api(gateway.url, 'GET', `/api/v1/chat${path}`, { token }),
    post: (path: string, body: unknown) => api(gateway.url, 'POST', `/api/v1/chat${path}`, { token, body }),
    put: (path: string) => api(gateway.url, 'PUT', `/api/v1/chat${path}`, { token }),
  };
};

function expectError(response: ApiResponse, status: number, message?: RegExp): void {
  expect(response.status).toBe(status);
  expect(response.body['success']).toBe(false);
  expect(typeof response.body['error']).toBe('string');
  if (message) expect(response.body['error']).toMatch(message);
}

const dataOf = <T = Record<string, unknown>>(response: ApiResponse): T => response.body['data'] as T;

async function conversationBetween(a: number, b: number): Promise<string> {
  const response = await as(a).post('/conversations', { user_id: b });
  expect([200, 201]).toContain(response.status);
  return dataOf(response)['id'] as string;
}

describe('POST /conversations', () => {
  it('creates with 201 and the Conversation, then answers 200 with the same one from either side', async () => {
    const created = await as(1).post('/conversations', { user_id: 2 });
    expect(created.status).toBe(201);
    const conversation = dataOf(created);
    expect(conversation).toMatchObject({
      user1_id: 1,
      user2_id: 2,
      last_message_content: null,
      last_message_at: null,
      unread_count: 0,
    });
    expect(conversation['id']).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(conversation['created_at']).toMatch(ISO_MS);
    expect(conversation['updated_at']).toMatch(ISO_MS);

    const again = await as(1).post('/conversations', { user_id: 2 });
    const reverse = await as(2).post('/conversations', { user_id: 1 });
    expect([again.status, reverse.status]).toEqual([200, 200]);
    expect(dataOf(again)['id']).toBe(conversation['id']);
    expect(dataOf(reverse)['id']).toBe(conversation['id']);
  });

  it('makes exactly one conversation when both users create it at once', async () => {
    const answers = await Promise.all(
      Array.from({ length: 8 }, (_, i) => (i % 2 === 0 ? as(3).post('/conversations', { user_id: 4 }) : as(4).post('/conversations', { user_id: 3 }))),
    );
    expect(new Set(answers.map((answer) => dataOf(answer)['id'])).size).toBe(1);
    expect(answers.filter((answer) => answer.status === 201)).toHaveLength(1);
    expect(answers.filter((answer) => answer.status === 200)).toHaveLength(7);
  });

  it('answers 400 to a missing or invalid user_id, user_id = caller, bad JSON, and 413 to a huge body', async () => {
    expectError(await as(1).post('/conversations', {}), 400, /user_id/);
    expectError(await as(1).post('/conversations', { user_id: '2' }), 400, /user_id/);
    expectError(await as(1).post('/conversations', { user_id: 2.5 }), 400, /user_id/);
    expectError(await as(1).post('/conversations', { user_id: -3 }), 400, /user_id/);
    expectError(await as(1).post('/conversations', { user_id: 1 }), 400, /yourself/);
    expectError(await as(1).post('/conversations', '{"user_id": 2'), 400, /JSON/);
    expectError(await as(1).post('/conversations', ''), 400, /JSON/);
    expectError(await as(1).post('/conversations', { user_id: 2, padding: 'x'.repeat(20_000) }), 413);
  });
});

describe('GET /conversations and /conversations/:id', () => {
  it('lists the caller\'s conversations, most recent activity first, with unread counts', async () => {
    const older = await conversationBetween(5, 6);
    const newer = await conversationBetween(7, 5);
    expect((dataOf<{ id: string }[]>(await as(5).get('/conversations'))).map((c) => c.id)).toEqual([newer, older]);

    expect((await as(6).post('/messages', { conversation_id: older, message: 'hello 5' })).status).toBe(201);
    // The sender's own read right after its write: no sleep, the query waits for the read tables.
    expect(dataOf<Record<string, unknown>[]>(await as(6).get('/conversations'))[0]).toMatchObject({
      id: older,
      last_message_content: 'hello 5',
      unread_count: 0,
    });
    // The other participant did not write, and sees it at once all the same: reads are consistent for everyone.
    const list = dataOf<Record<string, unknown>[]>(await as(5).get('/conversations'));
    expect(list.map((c) => c['id'])).toEqual([older, newer]);
    expect(list[0]).toMatchObject({ last_message_content: 'hello 5', unread_count: 1 });
    expect(list[0]!['last_message_at']).toMatch(ISO_MS);

    // Pages: `limit`, and `before` the last conversation of the previous page.
    const ids = (response: ApiResponse) => dataOf<{ id: string }[]>(response).map((c) => c.id);
    expect(ids(await as(5).get('/conversations?limit=1'))).toEqual([older]);
    expect(ids(await as(5).get(`/conversations?limit=1&before=${older}`))).toEqual([newer]);
    expect(ids(await as(5).get(`/conversations?before=${newer}`))).toEqual([]);
    expectError(await as(5).get('/conversations?limit=0'), 400, /limit/);
    expectError(await as(5).get('/conversations?limit=501'), 400, /limit/);
    expectError(await as(5).get('/conversations?before=garbage'), 400, /before/);
    // Another user's conversation is no cursor of this one's.
    expectError(await as(6).get(`/conversations?before=${newer}`), 400, /before/);
  });

  it('gives a participant the conversation, and a stranger the same 404 as a missing one', async () => {
    const id = await conversationBetween(8, 9);
    const got = await as(9).get(`/conversations/${id}`);
    expect(got.status).toBe(200);
    expect(dataOf(got)).toMatchObject({ id, user1_id: 8, user2_id: 9 });

    const stranger = await as(10).get(`/conversations/${id}`);
    const missing = await as(10).get('/conversations/01ARZ3NDEKTSV4RRFFQ69G5FAV');
    expectError(stranger, 404);
    expect(stranger.body).toEqual(missing.body);
  });
});

describe('POST /messages', () => {
  let conversation: string;
  beforeAll(async () => {
    conversation = await conversationBetween(1, 2);
  });

  it('answers 201 with the Message, and a retry with the same client_msg_id 200 with the original and nothing new', async () => {
    const sent = await as(1).post('/messages', { conversation_id: conversation, message: 'bonjour', client_msg_id: 'c-1' });
    expect(sent.status).toBe(201);
    const message = dataOf(sent);
    expect(message).toMatchObject({ conv_id: conversation, sender_id: 1, msg: 'bonjour', read_at: null, client_msg_id: 'c-1' });
    expect(message['id']).toMatch(/^[0-9A-HJKMNP-TV-Z]{26}$/);
    expect(message['time']).toMatch(ISO_MS);

    const retry = await as(1).post('/messages', { conversation_id: conversation, message: 'bonjour', client_msg_id: 'c-1' });
    expect(retry.status).toBe(200);
    expect(dataOf(retry)['id']).toBe(message['id']);

    const withoutId = await as(1).post('/messages', { conversation_id: conversation, message: 'no id' });
    expect(withoutId.status).toBe(201);
    expect(dataOf(withoutId)['client_msg_id']).toBeNull();

    const page = dataOf<Record<string, unknown>[]>(await as(1).get(`/conversations/${conversation}/messages`));
    expect(page.map((m) => m['msg'])).toEqual(['no id', 'bonjour']);
  });

  it('accepts 1000 code points (emoji count as one) and refuses blank, 1001 characters, missing fields and wrong types', async () => {
    const send = (body: unknown) => as(1).post('/messages', body);
    expect((await send({ conversation_id: conversation, message: '😀'.repeat(1000) })).status).toBe(201);
    expectError(await send({ conversation_id: conversation, message: '' }), 400, /empty|blank/);
    expectError(await send({ conversation_id: conversation, message: ' \n\t ' }), 400, /blank/);
    const tooLong = await send({ conversation_id: conversation, message: 'a'.repeat(1001) });
    expectError(tooLong, 400, /1000/);
    expect(tooLong.body['code']).toBe('too_long');
    expectError(await send({ conversation_id: conversation }), 400, /message/);
    expectError(await send({ message: 'hi' }), 400, /conversation_id/);
    expectError(await send({ conversation_id: conversation, message: 42 }), 400, /message/);
    expectError(await send({ conversation_id: 7, message: 'hi' }), 400, /conversation_id/);
    expectError(await send('not json'), 400, /JSON/);
  });

  it('refuses a client_msg_id that is empty, over 128 characters or holds a control character with 400 invalid_client_msg_id', async () => {
    const id = await conversationBetween(13, 14);
    const send = (clientMsgId: string) => as(13).post('/messages', { conversation_id: id, message: `with ${JSON.stringify(clientMsgId)}`, client_msg_id: clientMsgId });
    for (const refused of ['', 'k'.repeat(129), 'tab\there', 'line\nbreak', 'nul\u0000', 'bell\u0007', 'del\u007f']) {
      const response = await send(refused);
      expectError(response, 400, /client_msg_id/);
      expect(response.body['code'], JSON.stringify(refused)).toBe('invalid_client_msg_id');
    }
    // The bounds are characters (code points): 128 of them, emoji included, are fine.
    for (const accepted of ['k'.repeat(128), '😀'.repeat(128), 'é-ü-日本']) {
      const response = await send(accepted);
      expect(response.status, JSON.stringify(response.body)).toBe(201);
      expect(dataOf(response)['client_msg_id']).toBe(accepted);
    }
    const page = dataOf<Record<string, unknown>[]>(await as(13).get(`/conversations/${id}/messages`));
    expect(page.map((m) => m['client_msg_id'])).toEqual(['é-ü-日本', '😀'.repeat(128), 'k'.repeat(128)]);
  });

  it('answers 409 client_msg_id_conflict to a sender reusing a client_msg_id in another conversation, and appends nothing', async () => {
    const [first, second] = [await conversationBetween(15, 16), await conversationBetween(15, 17)];
    const original = await as(15).post('/messages', { conversation_id: first, message: 'the original', client_msg_id: 'reused-key' });
    expect(original.status).toBe(201);
    const conflict = await as(15).post('/messages', { conversation_id: second, message: 'elsewhere', client_msg_id: 'reused-key' });
    expectError(conflict, 409, /client_msg_id/);
    expect(conflict.body['code']).toBe('client_msg_id_conflict');
    // The key is the sender's own: another sender may use it in that conversation.
    expect((await as(17).post('/messages', { conversation_id: second, message: 'mine', client_msg_id: 'reused-key' })).status).toBe(201);
    expect(dataOf<Record<string, unknown>[]>(await as(15).get(`/conversations/${second}/messages`)).map((m) => m['msg'])).toEqual(['mine']);
    expect(dataOf<Record<string, unknown>[]>(await as(15).get(`/conversations/${first}/messages`)).map((m) => m['msg'])).toEqual(['the original']);
  });

  it('gives a stranger writing to a conversation the same 404 as a missing one', async () => {
    const stranger = await as(11).post('/messages', { conversation_id: conversation, message: 'intrusion' });
    const missing = await as(11).post('/messages', { conversation_id: '01ARZ3NDEKTSV4RRFFQ69G5FAV', message: 'intrusion' });
    expectError(stranger, 404);
    expect(stranger.body).toEqual(missing.body);
  });

  it('limits messages per user with 429 and Retry-After, shared with WebSocket sends', async () => {
    const id = await conversationBetween(90, 91);
    const token = tokens.get(90)!;
    const post = () => api(limited.url, 'POST', '/api/v1/chat/messages', { token, body: { conversation_id: id, message: 'spam' } });
    expect((await post()).status).toBe(201);
    expect((await post()).status).toBe(201);
    const socket = await openSocket(limited.wsUrl, { token });
    expect(await socket.request({ type: 'send_message', conversation_id: id, content: 'via ws' })).toMatchObject({ type: 'ack' });
    const refused = await post();
    expectError(refused, 429, /too many/);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(Number(refused.headers.get('retry-after'))).toBeLessThanOrEqual(60);
    const overWs = await socket.request({ type: 'send_message', conversation_id: id, content: 'via ws' });
    expect(overWs).toMatchObject({ type: 'error', data: { code: 'rate_limited' } });
    expect(socket.ws.readyState).toBe(socket.ws.OPEN);
    await socket.close();
    // Another user is not affected.
    expect((await api(limited.url, 'POST', '/api/v1/chat/messages', { token: tokens.get(91)!, body: { conversation_id: id, message: 'hi' } })).status).toBe(201);
  });
});

describe('GET /conversations/:id/messages', () => {
  let conversation: string;
  beforeAll(async () => {
    conversation = await conversationBetween(3, 12);
    for (let i = 1; i <= 12; i++) {
      expect((await as(i % 2 === 0 ? 3 : 12).post('/messages', { conversation_id: conversation, message: `m${i}` })).status).toBe(201);
    }
  });
  const texts = (response: ApiResponse) => dataOf<Record<string, unknown>[]>(response).map((m) => m['msg']);

  it('pages newest first with limit and offset, default 50', async () => {
    const all = await as(3).get(`/conversations/${conversation}/messages`);
    expect(all.status).toBe(200);
    expect(texts(all)).toEqual(Array.from({ length: 12 }, (_, i) => `m${12 - i}`));
    const first = dataOf<Record<string, unknown>[]>(all)[0]!;
    expect(Object.keys(first)).toEqual(expect.arrayContaining(['id', 'conv_id', 'sender_id', 'msg', 'time', 'read_at', 'client_msg_id']));
    expect(texts(await as(3).get(`/conversations/${conversation}/messages?limit=5&offset=5`))).toEqual(['m7', 'm6', 'm5', 'm4', 'm3']);
    expect(texts(await as(3).get(`/conversations/${conversation}/messages?limit=1000`))).toHaveLength(12);
  });

  it('pages with a before=<message id> cursor', async () => {
    // User 3 sent the last message, so its reads see all twelve.
    const firstPage = dataOf<Record<string, unknown>[]>(await as(3).get(`/conversations/${conversation}/messages?limit=4`));
    const last = firstPage.at(-1)!['id'] as string;
    expect(texts(await as(3).get(`/conversations/${conversation}/messages?limit=4&before=${last}`))).toEqual(['m8', 'm7', 'm6', 'm5']);
  });

  it('answers 400 to limit 0, 1001, non-numbers, a negative offset, a bad cursor and offset with before', async () => {
    const path = `/conversations/${conversation}/messages`;
    expectError(await as(3).get(`${path}?limit=0`), 400, /limit/);
    expectError(await as(3).get(`${path}?limit=1001`), 400, /limit/);
    expectError(await as(3).get(`${path}?limit=ten`), 400, /limit/);
    expectError(await as(3).get(`${path}?offset=-1`), 400, /offset/);
    expectError(await as(3).get(`${path}?before=01ARZ3NDEKTSV4RRFFQ69G5FAV`), 400, /before/);
    const [someId] = dataOf<{ id: string }[]>(await as(3).get(`${path}?limit=1`)).map((m) => m.id);
    expectError(await as(3).get(`${path}?offset=1&before=${someId}`), 400, /either/);
  });

  it('gives a stranger the same 404 as a missing conversation', async () => {
    const stranger = await as(11).get(`/conversations/${conversation}/messages`);
    const missing = await as(11).get('/conversations/01ARZ3NDEKTSV4RRFFQ69G5FAV/messages');
    expectError(stranger, 404);
    expect(stranger.body).toEqual(missing.body);
  });
});

describe('PUT /conversations/:id/read and PUT /conversations/:id/', () => {
  it('marks the other participant\'s messages read, visible in the reader\'s next GET and the sender\'s', async () => {
    const id = await conversationBetween(4, 6);
    await as(6).post('/messages', { conversation_id: id, message: 'one' });
    await as(6).post('/messages', { conversation_id: id, message: 'two' });
    await as(4).post('/messages', { conversation_id: id, message: 'mine' });
    expect(dataOf(await as(4).get(`/conversations/${id}`))['unread_count']).toBe(2);

    const read = await as(4).put(`/conversations/${id}/read`);
    expect(read.status).toBe(200);
    expect(dataOf(read)).toMatchObject({ message: 'Messages marked as read' });
    expect(dataOf(await as(4).get(`/conversations/${id}`))['unread_count']).toBe(0);
    const messages = dataOf<Record<string, unknown>[]>(await as(4).get(`/conversations/${id}/messages`));
    expect(messages.find((m) => m['msg'] === 'mine')!['read_at']).toBeNull();
    for (const m of messages.filter((m) => m['sender_id'] === 6)) expect(m['read_at']).toMatch(ISO_MS);

    await as(6).post('/messages', { conversation_id: id, message: 'three' });
    const seedForm = await as(4).put(`/conversations/${id}/`);
    expect(seedForm.status).toBe(200);
    expect(dataOf(seedForm)).toMatchObject({ message: 'Messages marked as read' });
    expect(dataOf(await as(4).get(`/conversations/${id}`))['unread_count']).toBe(0);
  });

  it('gives a stranger the same 404 as a missing conversation, on both routes', async () => {
    const id = await conversationBetween(1, 6);
    for (const suffix of ['read', '']) {
      const stranger = await as(11).put(`/conversations/${id}/${suffix}`);
      const missing = await as(11).put(`/conversations/01ARZ3NDEKTSV4RRFFQ69G5FAV/${suffix}`);
      expectError(stranger, 404);
      expect(stranger.body).toEqual(missing.body);
    }
  });
});
