import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeCursor } from '../../../src/delivery/cursor.js';
import { api, mintToken, openSocket, startTestGateway, type ApiResponse, type TestGateway, type TestSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';

/**
 * Every costly operation has a per-user limit, answered with 429 `rate_limited` and `Retry-After` (an
 * `error` frame with the request_id over WS); only what costs something counts.
 */

let gateway: TestGateway;
/** A second gateway on the same database and Redis key prefix: the limits are per user, not per gateway. */
let second: TestGateway;
const sockets: TestSocket[] = [];

beforeAll(async () => {
  const options = {
    databaseUrl: await createTestDatabase(),
    prefix: testPrefix(),
    env: {
      RATE_LIMIT_MESSAGES_PER_MINUTE: '2',
      RATE_LIMIT_CONVERSATIONS_PER_MINUTE: '2',
      RATE_LIMIT_READS_PER_MINUTE: '2',
      RATE_LIMIT_LISTS_PER_MINUTE: '2',
      RATE_LIMIT_RESUMES_PER_MINUTE: '1',
      // No projector runs here: starts answer from the command without waiting for the read tables.
      READ_CONSISTENCY_TIMEOUT_MS: '50',
    },
  };
  [gateway, second] = await Promise.all([startTestGateway(options), startTestGateway(options)]);
});
afterAll(async () => {
  await Promise.all(sockets.map((socket) => socket.close()));
  await Promise.all([gateway?.close(), second?.close()]);
});

async function call(userId: number, method: string, path: string, body?: unknown, on: TestGateway = gateway): Promise<ApiResponse> {
  return api(on.url, method, `/api/v1/chat${path}`, { token: await mintToken(userId), ...(body === undefined ? {} : { body }) });
}

function expectLimited(response: ApiResponse): void {
  expect(response.status).toBe(429);
  expect(response.body).toMatchObject({ success: false, code: 'rate_limited' });
  const retryAfter = Number(response.headers.get('retry-after'));
  expect(retryAfter).toBeGreaterThanOrEqual(1);
  expect(retryAfter).toBeLessThanOrEqual(60);
}

async function connect(userId: number, query = '', on: TestGateway = gateway): Promise<TestSocket> {
  const socket = await openSocket(`${on.wsUrl}${query}`, { token: await mintToken(userId) });
  sockets.push(socket);
  await socket.waitFor((frame) => frame.type === 'connected');
  return socket;
}

/** A conversation started by a user whose own start budget does not matter here. */
async function conversation(a: number, b: number): Promise<string> {
  const started = await call(a, 'POST', '/conversations', { user_id: b });
  expect([200, 201]).toContain(started.status);
  return (started.body['data'] as { id: string }).id;
}

describe('per-user limits', () => {
  it('limits conversations started; finding one already there costs nothing', async () => {
    expect((await call(100, 'POST', '/conversations', { user_id: 101 })).status).toBe(201);
    expect((await call(100, 'POST', '/conversations', { user_id: 101 })).status).toBe(200);
    expect((await call(100, 'POST', '/conversations', { user_id: 100 })).status).toBe(400);
    expect((await call(100, 'POST', '/conversations', { user_id: 102 })).status).toBe(201);
    expectLimited(await call(100, 'POST', '/conversations', { user_id: 103 }));
  });

  it('counts blocks and unblocks with conversations started; one that changes nothing costs nothing', async () => {
    const id = await conversation(141, 140);
    const change = async (method: 'POST' | 'DELETE') => {
      const response = await call(140, method, `/conversations/${id}/block`);
      // Recorded, then answered as a query answers without a projector (here): read_model_behind.
      return { status: response.status, code: response.body['code'] };
    };
    const behind = { status: 503, code: 'read_model_behind' };
    expect(await change('POST')).toEqual(behind);
    expect(await change('POST')).toEqual(behind); // already blocked: free
    expect(await change('DELETE')).toEqual(behind);
    expectLimited(await call(140, 'POST', `/conversations/${id}/block`));
    expectLimited(await call(140, 'POST', '/conversations', { user_id: 142 }));
  });

  it('limits conversation lists', async () => {
    expect((await call(110, 'GET', '/conversations')).status).toBe(200);
    expect((await call(110, 'GET', '/conversations')).status).toBe(200);
    expectLimited(await call(110, 'GET', '/conversations'));
  });

  it('limits marks read, over REST and the read and join_conversation frames together', async () => {
    const id = await conversation(121, 120);
    expect((await call(120, 'PUT', `/conversations/${id}/read`)).status).toBe(200);
    const socket = await connect(120);
    expect(await socket.request({ type: 'join_conversation', conversation_id: id })).toMatchObject({ type: 'ack' });
    expect(await socket.request({ type: 'read', conversation_id: id })).toMatchObject({ type: 'error', data: { code: 'rate_limited' } });
    expectLimited(await call(120, 'PUT', `/conversations/${id}/read`));
  });

  it('counts only appended messages, and answers a retry of a stored message even at the limit', async () => {
    const id = await conversation(131, 130);
    const send = (body: Record<string, unknown>) => call(130, 'POST', '/messages', { conversation_id: id, ...body });
    const first = await send({ message: 'one', client_msg_id: 'a' });
    expect(first.status).toBe(201);
    expect((await send({ message: 'one', client_msg_id: 'a' })).status).toBe(200); // a retry: free
    expect((await call(130, 'POST', '/messages', { conversation_id: '01ARZ3NDEKTSV4RRFFQ69G5FAV', message: 'lost' })).status).toBe(404);
    expect((await send({ message: 'two', client_msg_id: 'b' })).status).toBe(201);
    // Two appended: the budget is spent.
    expectLimited(await send({ message: 'three', client_msg_id: 'c' }));
    const retried = await send({ message: 'one', client_msg_id: 'a' });
    expect(retried.status).toBe(200);
    expect((retried.body['data'] as { id: string }).id).toBe((first.body['data'] as { id: string }).id);
    const socket = await connect(130);
    expect(await socket.request({ type: 'send_message', conversation_id: id, content: 'two', client_msg_id: 'b' })).toMatchObject({
      type: 'ack',
      data: { client_msg_id: 'b', msg: 'two' },
    });
    const refused = await socket.request({ type: 'send_message', conversation_id: id, content: 'four' });
    expect(refused).toMatchObject({ type: 'error', data: { code: 'rate_limited' } });
    // As REST's Retry-After: when to send it again, within the limit's one-minute window.
    const retryAfter = (refused['data'] as { retry_after?: number }).retry_after;
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(60);
  });

  it('limits replays: a resume over the limit is refused with its request_id, ?since= over it gets resync_required and goes live', async () => {
    const socket = await connect(140);
    const since = encodeCursor({ transactionId: 1n, globalPosition: 1n });
    expect(await socket.request({ type: 'resume', since })).toMatchObject({ type: 'ack' });
    expect(await socket.request({ type: 'resume', since })).toMatchObject({ type: 'error', data: { code: 'rate_limited' } });

    const late = await connect(140, `?since=${since}`);
    await late.waitFor((frame) => frame.type === 'resync_required');
    expect(late.frames.map((frame) => frame.type).slice(0, 3)).toEqual(['connected', 'error', 'resync_required']);
    expect(late.frames[1]).toMatchObject({ data: { code: 'rate_limited' } });
    // The socket stays open and answers (live delivery needs the fan-out, which this file does not run).
    late.send({ type: 'ping' });
    await late.waitFor((frame) => frame.type === 'pong');
  });
});

describe('limits across gateways', () => {
  it('counts a user\'s messages, starts and lists on every gateway against one budget (shared in Redis)', async () => {
    const id = await conversation(151, 150);
    const send = (on: TestGateway, message: string) => call(150, 'POST', '/messages', { conversation_id: id, message }, on);
    expect((await send(gateway, 'on the first')).status).toBe(201);
    const socket = await connect(150, '', second);
    expect(await socket.request({ type: 'send_message', conversation_id: id, content: 'on the second' })).toMatchObject({ type: 'ack' });
    expectLimited(await send(gateway, 'over, on the first'));
    expectLimited(await send(second, 'over, on the second'));

    expect((await call(160, 'POST', '/conversations', { user_id: 161 }, gateway)).status).toBe(201);
    expect((await call(160, 'POST', '/conversations', { user_id: 162 }, second)).status).toBe(201);
    expectLimited(await call(160, 'POST', '/conversations', { user_id: 163 }, gateway));
    expectLimited(await call(160, 'POST', '/conversations', { user_id: 164 }, second));

    expect((await call(170, 'GET', '/conversations', undefined, second)).status).toBe(200);
    expect((await call(170, 'GET', '/conversations', undefined, gateway)).status).toBe(200);
    expectLimited(await call(170, 'GET', '/conversations', undefined, second));
  });
});
