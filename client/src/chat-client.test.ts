import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { fakeToken, FakeWebSocket } from '../test/fake-websocket.js';
import { ChatClient, type ChatClientOptions } from './chat-client.js';
import { ChatError } from './chat-error.js';
import type { Message } from './frames.js';

const NOW = Date.UTC(2026, 10, 27, 12, 0, 0);
const CONV = '01JDCONVERSATION0000000000';

function newClient(options: Partial<ChatClientOptions> = {}) {
  const tokens: string[] = [];
  const getToken = vi.fn(() => {
    const token = fakeToken(Math.floor(Date.now() / 1000) + 3_600, '42', String(tokens.length));
    tokens.push(token);
    return Promise.resolve(token);
  });
  const client = new ChatClient({
    baseUrl: 'http://chat.test:8004',
    getToken,
    WebSocket: FakeWebSocket as unknown as typeof WebSocket,
    fetch: () => Promise.reject(new Error('no REST in these tests')),
    random: () => 0.5,
    ...options,
  });
  return { client, getToken, tokens };
}

/** Lets the client's awaited getToken settle and the socket get created. */
const settle = () => vi.advanceTimersByTimeAsync(0);

async function openSocket(client: ChatClient, userId = 42): Promise<FakeWebSocket> {
  await settle();
  const socket = FakeWebSocket.last();
  socket.open();
  socket.acceptAuth(userId);
  expect(client.state).toBe('open');
  return socket;
}

let seq = 0;
function messageFrame(conversationSeq: number, text: string, conversationId = CONV) {
  seq++;
  return {
    type: 'new_message',
    conversation_id: conversationId,
    seq: conversationSeq,
    cursor: `cursor-${conversationId}-${conversationSeq}`,
    timestamp: new Date().toISOString(),
    data: { id: `m${seq}`, sender_id: 7, message: text, timestamp: new Date().toISOString(), read_at: null, client_msg_id: null },
  };
}

const message = (clientMsgId: string, content: string): Message => ({
  id: `id-${clientMsgId}`,
  conv_id: CONV,
  sender_id: 42,
  msg: content,
  time: new Date().toISOString(),
  read_at: null,
  client_msg_id: clientMsgId,
  seq: 2,
  deleted_at: null,
});

beforeEach(() => {
  vi.useFakeTimers({ now: NOW });
  FakeWebSocket.reset();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('connecting', () => {
  it('opens the socket at /api/v1/chat/ws, authenticates with a first auth frame and goes open on `connected`', async () => {
    const { client, tokens } = newClient();
    const states: string[] = [];
    const connected = vi.fn();
    client.on('state', (state) => states.push(state));
    client.on('connected', connected);
    client.connect();
    await settle();
    const socket = FakeWebSocket.last();
    expect(socket.url).toBe('ws://chat.test:8004/api/v1/chat/ws');
    socket.open();
    expect(socket.sent).toEqual([{ type: 'auth', token: tokens[0] }]);
    socket.acceptAuth(42);
    expect(states).toEqual(['connecting', 'open']);
    expect(connected).toHaveBeenCalledWith({ user_id: 42 });
    expect(client.userId).toBe(42);
  });

  it('uses wss for an https base URL', async () => {
    const { client } = newClient({ baseUrl: 'https://chat.test/' });
    client.connect();
    await settle();
    expect(FakeWebSocket.last().url).toBe('wss://chat.test/api/v1/chat/ws');
  });
});

describe('reconnecting', () => {
  it('waits a jittered backoff, growing per failed attempt, and resumes from the last cursor', async () => {
    const random = vi.fn(() => 0.5);
    const { client } = newClient({ random, backoff: { initialMs: 1_000, maxMs: 8_000 } });
    client.connect();
    const first = await openSocket(client);
    first.receive(messageFrame(1, 'one'));
    first.serverClose(1012, 'service restart');
    expect(client.state).toBe('reconnecting');

    // attempt 0: cap 1000, draw 0.5 -> 750 ms
    await vi.advanceTimersByTimeAsync(749);
    expect(FakeWebSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(FakeWebSocket.last().since).toBe(`cursor-${CONV}-1`);

    // attempt 1 fails before opening: cap 2000 -> 1500 ms
    FakeWebSocket.last().serverClose(1006);
    await vi.advanceTimersByTimeAsync(1_499);
    expect(FakeWebSocket.instances).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWebSocket.instances).toHaveLength(3);
    expect(random).toHaveBeenCalledTimes(2);
  });

  it('starts the backoff over once connected again', async () => {
    const { client } = newClient({ random: () => 0, backoff: { initialMs: 1_000, maxMs: 60_000 } });
    client.connect();
    const first = await openSocket(client);
    first.serverClose(1006);
    for (const wait of [500, 1_000, 2_000]) {
      await vi.advanceTimersByTimeAsync(wait);
      FakeWebSocket.last().serverClose(1006);
    }
    // attempt 3 (4000 ms cap, draw 0 -> 2000 ms) connects
    await vi.advanceTimersByTimeAsync(4_000);
    const count = FakeWebSocket.instances.length;
    const back = FakeWebSocket.last();
    back.open();
    back.acceptAuth();
    back.serverClose(1006);
    await vi.advanceTimersByTimeAsync(499);
    expect(FakeWebSocket.instances).toHaveLength(count);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWebSocket.instances).toHaveLength(count + 1);
  });

  it('after a 4401 asks for a token again and reconnects at once; a second 4401 in a row closes with an error', async () => {
    const { client, getToken } = newClient();
    const errors: ChatError[] = [];
    client.on('error', (error) => errors.push(error));
    client.connect();
    const socket = await openSocket(client);
    socket.serverClose(4401, 'token expired');
    await settle();
    expect(getToken).toHaveBeenCalledTimes(2);
    const second = FakeWebSocket.last();
    expect(second).not.toBe(socket);
    second.open();
    second.serverClose(4401, 'token signature is invalid');
    expect(client.state).toBe('closed');
    expect(errors.map((error) => error.code)).toEqual(['unauthorized']);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('replaces a socket that sent nothing for the keepalive timeout, and pings meanwhile', async () => {
    const { client } = newClient({ keepalive: { intervalMs: 10_000, timeoutMs: 25_000 } });
    client.connect();
    const socket = await openSocket(client);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(socket.sentOfType('ping')).toHaveLength(6);
    expect(client.state).toBe('open');
    socket.autoPong = false;
    await vi.advanceTimersByTimeAsync(24_999);
    expect(client.state).toBe('open');
    await vi.advanceTimersByTimeAsync(1);
    expect(client.state).toBe('reconnecting');
    expect(socket.closedByClient).not.toBeNull();
    await vi.advanceTimersByTimeAsync(500);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('drops the cursor on invalid_cursor, so the next connection does not send it again', async () => {
    const saved: string[] = [];
    const cleared = vi.fn();
    const { client } = newClient({ cursorStore: { load: () => 'stale', save: (cursor) => saved.push(cursor), clear: cleared } });
    const errors: string[] = [];
    client.on('error', (error) => errors.push(error.code));
    client.connect();
    await settle();
    const socket = FakeWebSocket.last();
    expect(socket.since).toBe('stale');
    socket.open();
    socket.acceptAuth();
    socket.receive({ type: 'error', timestamp: new Date().toISOString(), data: { code: 'invalid_cursor', message: 'not ours' } });
    expect(client.cursor).toBeNull();
    expect(cleared).toHaveBeenCalled();
    expect(errors).toEqual(['invalid_cursor']);
    socket.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(FakeWebSocket.last().since).toBeNull();
  });
});

describe('event frames', () => {
  it('are emitted once each: a repeated or older seq of a conversation is dropped, and the cursor follows the accepted ones', async () => {
    const saved: string[] = [];
    const { client } = newClient({ cursorStore: { load: () => null, save: (cursor) => saved.push(cursor) } });
    const texts: string[] = [];
    client.on('new_message', (frame) => texts.push(`${frame.conversation_id.slice(-1)}${frame.seq}:${frame.data.message}`));
    client.connect();
    const socket = await openSocket(client);
    for (const frame of [messageFrame(1, 'a'), messageFrame(2, 'b'), messageFrame(2, 'b'), messageFrame(1, 'a'), messageFrame(3, 'c'), messageFrame(1, 'x', 'OTHER')]) {
      socket.receive(frame);
    }
    expect(texts).toEqual(['01:a', '02:b', '03:c', 'R1:x']);
    expect(saved).toEqual([`cursor-${CONV}-1`, `cursor-${CONV}-2`, `cursor-${CONV}-3`, 'cursor-OTHER-1']);

    socket.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1_000);
    const resumed = FakeWebSocket.last();
    resumed.open();
    resumed.acceptAuth();
    resumed.receive(messageFrame(3, 'c'));
    resumed.receive(messageFrame(4, 'd'));
    expect(texts.slice(4)).toEqual(['04:d']);
  });

  it('dispatches each kind of frame to its event, resync_required included', async () => {
    const { client } = newClient();
    const seen: string[] = [];
    for (const type of ['typing', 'presence', 'resync_required', 'message_deleted', 'conversation_blocked', 'conversation_removed'] as const) {
      client.on(type, () => seen.push(type));
    }
    client.connect();
    const socket = await openSocket(client);
    const at = new Date().toISOString();
    socket.receive({ type: 'typing', conversation_id: CONV, timestamp: at, data: { user_id: 7, is_typing: true } });
    socket.receive({ type: 'presence', timestamp: at, data: { user_id: 7, online: true, last_seen_at: at } });
    socket.receive({ type: 'resync_required', timestamp: at, data: { reason: 'too long' } });
    socket.receive({ type: 'message_deleted', conversation_id: CONV, seq: 5, cursor: 'c5', timestamp: at, data: { id: 'm1', deleted_at: at } });
    socket.receive({ type: 'conversation_removed', conversation_id: 'X', seq: 2, cursor: 'c6', timestamp: at });
    socket.receive({ type: 'something_new', timestamp: at });
    socket.receive({ type: 'new_message', conversation_id: CONV, seq: 'six', cursor: 'c7', timestamp: at, data: {} });
    expect(seen).toEqual(['typing', 'presence', 'resync_required', 'message_deleted', 'conversation_removed']);
    expect(client.cursor).toBe('c6');
  });
});

describe('sending', () => {
  it('queues a send while offline, sends it once connected, and resolves with the acked Message', async () => {
    const { client } = newClient();
    const sent = client.sendMessage(CONV, 'hello', { clientMsgId: 'c-1' });
    client.connect();
    const socket = await openSocket(client);
    const [frame] = socket.sentOfType('send_message');
    expect(frame).toMatchObject({ conversation_id: CONV, content: 'hello', client_msg_id: 'c-1' });
    socket.receive({ type: 'ack', request_id: frame?.['request_id'], timestamp: new Date().toISOString(), data: message('c-1', 'hello') });
    await expect(sent).resolves.toEqual(message('c-1', 'hello'));
  });

  it('retries with the same client_msg_id and a new request_id after a lost socket and after `unavailable`, until acked', async () => {
    const { client } = newClient();
    client.connect();
    const first = await openSocket(client);
    const sent = client.sendMessage(CONV, 'hello');
    first.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1_000);
    const second = await openSocket(client);
    const [retry] = second.sentOfType('send_message');
    second.receive({ type: 'error', request_id: retry?.['request_id'], timestamp: new Date().toISOString(), data: { code: 'unavailable', message: 'draining' } });
    expect(second.sentOfType('send_message')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1_000);
    const attempts = [...first.sentOfType('send_message'), ...second.sentOfType('send_message')];
    expect(attempts).toHaveLength(3);
    const clientMsgId = attempts[0]?.['client_msg_id'];
    expect(clientMsgId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(attempts.map((attempt) => attempt['client_msg_id'])).toEqual([clientMsgId, clientMsgId, clientMsgId]);
    expect(new Set(attempts.map((attempt) => attempt['request_id'])).size).toBe(3);

    const stored = message(String(clientMsgId), 'hello');
    second.receive({ type: 'ack', request_id: attempts[2]?.['request_id'], timestamp: new Date().toISOString(), data: stored });
    await expect(sent).resolves.toEqual(stored);
  });

  it('gives each send its own client_msg_id', async () => {
    const { client } = newClient();
    client.connect();
    const socket = await openSocket(client);
    void client.sendMessage(CONV, 'one');
    void client.sendMessage(CONV, 'two');
    const [first] = socket.sentOfType('send_message');
    socket.receive({ type: 'ack', request_id: first?.['request_id'], timestamp: new Date().toISOString(), data: message('x', 'one') });
    const ids = socket.sentOfType('send_message').map((frame) => frame['client_msg_id']);
    expect(ids).toHaveLength(2);
    expect(new Set(ids).size).toBe(2);
  });

  it('sends of one conversation go out one at a time, in order: a refused one is not overtaken', async () => {
    const { client } = newClient();
    client.connect();
    const socket = await openSocket(client);
    const sends = ['one', 'two', 'three'].map((text) => client.sendMessage(CONV, text));
    void client.sendMessage('ELSEWHERE', 'other');
    const at = () => new Date().toISOString();
    const contents = () => socket.sentOfType('send_message').map((frame) => frame['content']);
    expect(contents()).toEqual(['one', 'other']);
    const requestOf = (content: string) => socket.sentOfType('send_message').filter((frame) => frame['content'] === content).at(-1)?.['request_id'];
    socket.receive({ type: 'error', request_id: requestOf('one'), timestamp: at(), data: { code: 'rate_limited', message: 'slow down' } });
    expect(contents()).toEqual(['one', 'other']);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(contents()).toEqual(['one', 'other', 'one']);
    socket.receive({ type: 'ack', request_id: requestOf('one'), timestamp: at(), data: message('a', 'one') });
    expect(contents()).toEqual(['one', 'other', 'one', 'two']);
    socket.receive({ type: 'ack', request_id: requestOf('two'), timestamp: at(), data: message('b', 'two') });
    socket.receive({ type: 'ack', request_id: requestOf('three'), timestamp: at(), data: message('c', 'three') });
    expect((await Promise.all(sends)).map((sent) => sent.msg)).toEqual(['one', 'two', 'three']);
  });

  it('waits at least the retry_after a refusal asks for before sending again', async () => {
    const { client } = newClient();
    client.connect();
    const socket = await openSocket(client);
    const sent = client.sendMessage(CONV, 'later');
    const requests = () => socket.sentOfType('send_message');
    const retryAfter = { type: 'error', request_id: requests()[0]?.['request_id'], timestamp: new Date().toISOString() };
    socket.receive({ ...retryAfter, data: { code: 'rate_limited', message: 'slow down', retry_after: 5 } });
    await vi.advanceTimersByTimeAsync(4_900);
    expect(requests()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);
    expect(requests()).toHaveLength(2);
    socket.receive({ type: 'ack', request_id: requests()[1]?.['request_id'], timestamp: new Date().toISOString(), data: message('a', 'later') });
    expect((await sent).msg).toBe('later');
  });

  it('rejects on a final refusal (too_long, blocked, not_found) without retrying', async () => {
    const { client } = newClient();
    client.connect();
    const socket = await openSocket(client);
    const sent = client.sendMessage(CONV, 'x'.repeat(1_001));
    const [frame] = socket.sentOfType('send_message');
    socket.receive({ type: 'error', request_id: frame?.['request_id'], timestamp: new Date().toISOString(), data: { code: 'too_long', message: 'over 1000' } });
    await expect(sent).rejects.toMatchObject({ name: 'ChatError', code: 'too_long' });
    socket.serverClose(1006);
    await vi.advanceTimersByTimeAsync(1_000);
    const again = await openSocket(client);
    expect(again.sentOfType('send_message')).toEqual([]);
  });

  it('rejects what is pending on close(), and anything sent after', async () => {
    const { client } = newClient();
    const sent = client.sendMessage(CONV, 'never');
    client.close();
    await expect(sent).rejects.toBeInstanceOf(ChatError);
    await expect(client.sendMessage(CONV, 'after')).rejects.toMatchObject({ code: 'closed' });
    expect(client.state).toBe('closed');
  });

  it('markRead is queued and acked; typing needs an open socket', async () => {
    const { client } = newClient();
    await expect(client.typing(CONV, true)).rejects.toMatchObject({ code: 'not_connected' });
    const read = client.markRead(CONV);
    client.connect();
    const socket = await openSocket(client);
    const [frame] = socket.sentOfType('read');
    socket.receive({ type: 'ack', request_id: frame?.['request_id'], timestamp: new Date().toISOString(), data: { conversation_id: CONV } });
    await expect(read).resolves.toBeUndefined();
    const typing = client.typing(CONV, true);
    const [typingFrame] = socket.sentOfType('typing');
    expect(typingFrame).toMatchObject({ conversation_id: CONV, is_typing: true });
    socket.receive({ type: 'ack', request_id: typingFrame?.['request_id'], timestamp: new Date().toISOString(), data: { forwarded: true } });
    await expect(typing).resolves.toBe(true);
    const heldBack = client.typing(CONV, true);
    const [, heldBackFrame] = socket.sentOfType('typing');
    socket.receive({ type: 'ack', request_id: heldBackFrame?.['request_id'], timestamp: new Date().toISOString(), data: { forwarded: false } });
    await expect(heldBack).resolves.toBe(false);
  });
});

describe('token refresh', () => {
  it('sends an auth frame with a new token refreshBeforeExpiryMs before exp, then schedules the next from the new token', async () => {
    const { client, getToken, tokens } = newClient({ refreshBeforeExpiryMs: 60_000 });
    client.connect();
    const socket = await openSocket(client);
    expect(getToken).toHaveBeenCalledTimes(1);
    // The first token expires at NOW + 3600 s: refresh at NOW + 3540 s.
    await vi.advanceTimersByTimeAsync(3_540_000 - 1);
    expect(socket.sentOfType('auth')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    const refresh = socket.sentOfType('auth')[1];
    expect(refresh).toMatchObject({ type: 'auth', token: tokens[1] });
    expect(refresh?.['request_id']).toBeDefined();
    socket.receive({ type: 'ack', request_id: refresh?.['request_id'], timestamp: new Date().toISOString(), data: { user_id: 42 } });
    await settle();
    // The second token was minted at NOW + 3540 s, expiring an hour later.
    await vi.advanceTimersByTimeAsync(3_540_000 - 1);
    expect(socket.sentOfType('auth')).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(socket.sentOfType('auth')).toHaveLength(3);
    expect(client.state).toBe('open');
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it('reports a refused refresh and tries again later; the socket stays', async () => {
    const { client } = newClient({ refreshBeforeExpiryMs: 60_000 });
    const errors: string[] = [];
    client.on('error', (error) => errors.push(error.code));
    client.connect();
    const socket = await openSocket(client);
    await vi.advanceTimersByTimeAsync(3_540_000);
    const refresh = socket.sentOfType('auth')[1];
    socket.receive({ type: 'error', request_id: refresh?.['request_id'], timestamp: new Date().toISOString(), data: { code: 'unauthorized', message: 'bad' } });
    await settle();
    expect(errors).toEqual(['unauthorized']);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(socket.sentOfType('auth')).toHaveLength(3);
  });
});
