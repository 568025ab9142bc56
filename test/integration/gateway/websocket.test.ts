import type { Socket } from 'node:net';
import { sql, type DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { z } from 'zod';
import { sendMessage, sendMessages, startConversation, type CommandDeps } from '../../../src/commands/conversation/conversation-commands.js';
import { readStream } from '../../../src/event-store/read-stream.js';
import { encodeCursor } from '../../../src/delivery/cursor.js';
import { type EventFrame } from '../../../src/delivery/event-frames.js';
import type { NatsConnection } from 'nats';
import { connectNats, deliverySubject } from '../../../src/shared/nats.js';
import { sleep } from '../../../src/shared/sleep.js';
import { mintToken, openSocket, startTestGateway, upgradeStatus, type Frame, type TestGateway, type TestSocket } from '../../support/gateway.js';
import { unblockedFrameFor } from '../../support/delivered-frames.js';
import { createTestDatabase, natsCredentials, natsUrl, testPrefix } from '../../support/infra.js';

/**
 * The WebSocket protocol against a gateway in this process. Event frames are published on the delivery
 * subjects as the fan-out would (the end-to-end test runs the real fan-out); catch-up reads the real log.
 */

let gateway: TestGateway;
/** Small limits: 2 sockets per user, 2 KiB frames, a small send queue, 3-frame catch-up. */
let tight: TestGateway;
/** A heartbeat every 200 ms. */
let fastPing: TestGateway;
/** A send queue of 64 KiB: a tenth of a catch-up of 500 long messages. */
let smallQueue: TestGateway;
/** Stands in for the fan-out, with its NATS user: gateways may not publish on delivery subjects. */
let fanoutNats: NatsConnection;
let prefix: string;
let pool: DatabasePool;
let deps: CommandDeps;
const sockets: TestSocket[] = [];

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  prefix = testPrefix();
  gateway = await startTestGateway({ databaseUrl, prefix });
  tight = await startTestGateway({
    databaseUrl,
    prefix,
    env: {
      MAX_SOCKETS_PER_USER: '2',
      WS_MAX_FRAME_BYTES: '2048',
      WS_SEND_QUEUE_BYTES: '65536',
      WS_CATCH_UP_LIMIT: '3',
    },
  });
  fastPing = await startTestGateway({ databaseUrl, prefix, env: { WS_PING_INTERVAL_MS: '200' } });
  smallQueue = await startTestGateway({ databaseUrl, prefix, env: { WS_SEND_QUEUE_BYTES: String(64 * 1024) } });
  fanoutNats = await connectNats({ url: natsUrl(), name: 'fanout-in-test', ...natsCredentials('fanout') });
  pool = gateway.pool;
  deps = { pool, clock: () => new Date(), newId: monotonicFactory() };
});
afterAll(async () => {
  await Promise.all(sockets.map((socket) => socket.close()));
  await Promise.all([gateway.close(), tight.close(), fastPing.close(), smallQueue.close(), fanoutNats?.close()]);
});

async function connect(userId: number, options: { on?: TestGateway; query?: string } = {}): Promise<TestSocket> {
  const on = options.on ?? gateway;
  const socket = await openSocket(`${on.wsUrl}${options.query ?? ''}`, { token: await mintToken(userId) });
  sockets.push(socket);
  await socket.waitFor((frame) => frame.type === 'connected');
  return socket;
}

async function conversation(a: number, b: number): Promise<string> {
  return (await startConversation(deps, { initiatorId: a, otherUserId: b })).conversationId;
}

/** Publishes frames on a user's delivery subject, as the fan-out does, and waits until NATS has them. */
async function publish(userId: number, frames: readonly object[]): Promise<void> {
  for (const frame of frames) fanoutNats.publish(deliverySubject(prefix, userId), JSON.stringify(frame));
  await fanoutNats.flush();
}

/** Sends `count` messages and returns the frames of the whole conversation, from seq 1. */
async function frames(conversationId: string, senderId: number, count: number): Promise<EventFrame[]> {
  for (let i = 0; i < count; i++) await sendMessage(deps, { conversationId, senderId, content: `n${i}` });
  return (await readStream(pool, conversationId)).map(unblockedFrameFor(senderId));
}

/**
 * Waits until every transaction up to the latest event of `conversationId` is below the commit-safe horizon.
 * The catch-up reads only that far (later events come live from the fan-out, which these tests do not run),
 * and a transaction of another test file on the same Postgres can hold the horizon back for a moment.
 */
async function waitForHorizon(conversationId: string): Promise<void> {
  const latest = (await readStream(pool, conversationId)).at(-1)!;
  await vi.waitFor(
    async () => {
      const passed = await pool.oneFirst(sql.type(z.object({ passed: z.boolean() }))`
        SELECT pg_snapshot_xmin(pg_current_snapshot()) > ${latest.transactionId.toString()}::xid8 AS passed`);
      expect(passed).toBe(true);
    },
    { timeout: 10_000, interval: 20 },
  );
}

const ofType = (type: string) => (frame: Frame) => frame.type === type;

describe('client frames', () => {
  it('acks send_message with the Message, and sends nothing back for a frame without request_id', async () => {
    const id = await conversation(1, 2);
    const socket = await connect(1);
    const ack = await socket.request({ type: 'send_message', conversation_id: id, content: 'salut', client_msg_id: 'w-1' });
    expect(ack).toMatchObject({
      type: 'ack',
      data: { conv_id: id, sender_id: 1, msg: 'salut', read_at: null, client_msg_id: 'w-1', seq: 2 },
    });
    expect(typeof ack['timestamp']).toBe('string');
    const retry = await socket.request({ type: 'send_message', conversation_id: id, content: 'salut', client_msg_id: 'w-1' });
    expect((retry['data'] as Record<string, unknown>)['id']).toBe((ack['data'] as Record<string, unknown>)['id']);

    const before = socket.frames.length;
    socket.send({ type: 'send_message', conversation_id: id, content: 'quiet' });
    socket.send({ type: 'ping' });
    await socket.waitFor(ofType('pong'));
    // No ack and no error; the message itself may come back as the conversation's event (the sender's echo).
    expect(socket.frames.slice(before).map((frame) => frame.type).filter((type) => type !== 'new_message')).toEqual(['pong']);
    expect((await readStream(pool, id)).map((event) => event.type)).toEqual(['ConversationStarted', 'MessageSent', 'MessageSent']);
  });

  it('answers malformed frames with an error frame carrying the request_id, and keeps the socket open', async () => {
    const id = await conversation(1, 3);
    const socket = await connect(1);
    const errorFor = async (frame: unknown) => {
      const requestId = `bad-${Math.random()}`;
      socket.send(typeof frame === 'string' ? frame : { ...(frame as object), request_id: requestId });
      const error = await socket.waitFor((received) => received.type === 'error' && (typeof frame === 'string' || received['request_id'] === requestId));
      socket.frames.splice(socket.frames.indexOf(error), 1);
      return error['data'] as { code: string; message: string };
    };
    expect(await errorFor('{not json')).toMatchObject({ code: 'invalid_json' });
    expect(await errorFor('[1,2]')).toMatchObject({ code: 'invalid_frame' });
    expect(await errorFor({ content: 'no type' })).toMatchObject({ code: 'invalid_frame' });
    expect(await errorFor({ type: 'shout', content: 'hey' })).toMatchObject({ code: 'unknown_type' });
    expect(await errorFor({ type: 'send_message', conversation_id: id, content: 12 })).toMatchObject({ code: 'invalid_frame' });
    expect(await errorFor({ type: 'send_message', content: 'where?' })).toMatchObject({ code: 'invalid_frame', message: /conversation_id/ });
    expect(await errorFor({ type: 'typing', conversation_id: id, is_typing: 'yes' })).toMatchObject({ code: 'invalid_frame' });
    expect(await errorFor({ type: 'send_message', conversation_id: id, content: 'a'.repeat(1001) })).toMatchObject({ code: 'too_long' });
    expect(await errorFor({ type: 'send_message', conversation_id: id, content: '   ' })).toMatchObject({ code: 'blank_message' });
    for (const clientMsgId of ['', 'k'.repeat(129), 'tab\there', 'bell\u0007']) {
      expect(await errorFor({ type: 'send_message', conversation_id: id, content: 'keyed', client_msg_id: clientMsgId })).toMatchObject({
        code: 'invalid_client_msg_id',
      });
    }
    expect(await errorFor({ type: 'resume', since: 'not-a-cursor' })).toMatchObject({ code: 'invalid_cursor' });

    socket.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect((await socket.waitFor(ofType('error')))['data']).toMatchObject({ code: 'invalid_frame' });

    socket.send({ type: 'ping', request_id: 'still-open' });
    expect(await socket.waitFor(ofType('pong'))).toMatchObject({ request_id: 'still-open' });
    expect((await readStream(pool, id)).map((event) => event.type)).toEqual(['ConversationStarted']);
  });

  it('gives a stranger sending, reading or typing in a conversation the same not_found as a missing one', async () => {
    const id = await conversation(4, 5);
    const stranger = await connect(6);
    for (const frame of [
      { type: 'send_message', content: 'hi' },
      { type: 'read' },
      { type: 'join_conversation' },
      { type: 'typing', is_typing: true },
    ]) {
      const forbidden = await stranger.request({ ...frame, conversation_id: id });
      const missing = await stranger.request({ ...frame, conversation_id: '01ARZ3NDEKTSV4RRFFQ69G5FAV' });
      expect(forbidden).toMatchObject({ type: 'error', data: { code: 'not_found' } });
      expect(forbidden['data']).toEqual(missing['data']);
    }
  });

  it('marks read on join_conversation and read, acking the receipt', async () => {
    const id = await conversation(7, 8);
    await sendMessage(deps, { conversationId: id, senderId: 8, content: 'one' });
    await sendMessage(deps, { conversationId: id, senderId: 8, content: 'two' });
    const socket = await connect(7);
    const joined = await socket.request({ type: 'join_conversation', conversation_id: id });
    expect(joined).toMatchObject({ type: 'ack', data: { conversation_id: id, up_to_seq: 3 } });
    expect((joined['data'] as Record<string, unknown>)['read_at']).toMatch(/Z$/);
    await sendMessage(deps, { conversationId: id, senderId: 8, content: 'three' });
    expect(await socket.request({ type: 'read', conversation_id: id })).toMatchObject({ type: 'ack', data: { up_to_seq: 5 } });
    // Nothing unread: nothing appended.
    expect(await socket.request({ type: 'read', conversation_id: id })).toMatchObject({ type: 'ack', data: { up_to_seq: null } });
    expect((await readStream(pool, id)).filter((event) => event.type === 'MessagesRead')).toHaveLength(2);
  });

  it('bounds a typing flood that alternates true and false to two signals per second', async () => {
    const id = await conversation(40, 41);
    const sender = await connect(40);
    const receiver = await connect(41);
    const started = Date.now();
    const acks = await Promise.all(
      Array.from({ length: 30 }, (_, i) => sender.request({ type: 'typing', conversation_id: id, is_typing: i % 2 === 0 })),
    );
    const seconds = Math.ceil((Date.now() - started) / 1_000);
    const forwarded = acks.filter((ack) => (ack['data'] as { forwarded: boolean }).forwarded).length;
    expect(forwarded).toBeGreaterThanOrEqual(2);
    expect(forwarded).toBeLessThanOrEqual(2 * seconds);
    // Barrier: a signal forwarded after the window has passed arrives behind everything forwarded before.
    await sleep(1_000);
    expect(await sender.request({ type: 'typing', conversation_id: id, is_typing: false })).toMatchObject({ data: { forwarded: true } });
    await receiver.waitForCount(ofType('typing'), forwarded + 1);
    expect(receiver.frames.filter(ofType('typing'))).toHaveLength(forwarded + 1);
  });

  it('answers every pipelined frame with its request_id, also those refused for overload', async () => {
    const id = await conversation(42, 43);
    const socket = await connect(42);
    const ids = Array.from({ length: 40 }, (_, i) => `p${i}`);
    for (const [i, requestId] of ids.entries()) {
      socket.send({ type: 'send_message', conversation_id: id, content: `pipelined ${i}`, request_id: requestId });
    }
    const answers = await socket.waitForCount((frame) => typeof frame['request_id'] === 'string' && ids.includes(frame['request_id']), 40);
    expect(new Set(answers.map((frame) => frame['request_id']))).toEqual(new Set(ids));
    const refused = answers.filter((frame) => frame.type === 'error');
    expect(refused.length).toBeGreaterThan(0);
    for (const frame of refused) expect(frame['data']).toMatchObject({ code: 'rate_limited' });
    expect(answers.filter((frame) => frame.type === 'ack').length + refused.length).toBe(40);
    // The first 32 never have 32 others ahead of them: those are always handled.
    expect(answers.filter((frame) => frame.type === 'ack').length).toBeGreaterThanOrEqual(32);
  });

  it('closes the socket with 1009 on a frame over WS_MAX_FRAME_BYTES', async () => {
    const socket = await connect(9, { on: tight });
    socket.send({ type: 'send_message', conversation_id: 'x', content: 'a'.repeat(3000) });
    expect((await socket.closed).code).toBe(1009);
  });
});

describe('typing', () => {
  it('reaches every socket of the other participant only, throttled, and is never stored', async () => {
    const id = await conversation(10, 11);
    const sender = await connect(10);
    const [first, second] = [await connect(11), await connect(11)];
    const ack = await sender.request({ type: 'typing', conversation_id: id, is_typing: true });
    expect(ack).toMatchObject({ type: 'ack', data: { forwarded: true } });
    for (const socket of [first, second]) {
      expect(await socket.waitFor(ofType('typing'))).toMatchObject({ type: 'typing', conversation_id: id, data: { user_id: 10, is_typing: true } });
    }
    // Two per second per sender and conversation, whatever the state says: the third at once is not forwarded.
    expect(await sender.request({ type: 'typing', conversation_id: id, is_typing: false })).toMatchObject({ data: { forwarded: true } });
    expect(await sender.request({ type: 'typing', conversation_id: id, is_typing: true })).toMatchObject({ data: { forwarded: false } });
    await first.waitForCount(ofType('typing'), 2);
    // Barrier: once a second has passed, the next signal is forwarded, and it travels behind the refused one.
    await sleep(1_000);
    expect(await sender.request({ type: 'typing', conversation_id: id, is_typing: false })).toMatchObject({ data: { forwarded: true } });
    await first.waitForCount(ofType('typing'), 3);
    expect(first.frames.filter(ofType('typing')).map((frame) => (frame['data'] as { is_typing: boolean }).is_typing)).toEqual([true, false, false]);
    expect(sender.frames.filter(ofType('typing'))).toEqual([]);
    expect((await readStream(pool, id)).map((event) => event.type)).toEqual(['ConversationStarted']);
  });
});

describe('delivery', () => {
  it('writes each frame to every socket of the user, dropping a repeated or older seq per socket', async () => {
    const id = await conversation(12, 13);
    const log = await frames(id, 13, 4); // seq 1..5
    const [a, b] = [await connect(12), await connect(12)];
    // seq 5 last: a barrier on the same subject, so every repeat before it has been handled once it arrives.
    await publish(12, [log[0]!, log[1]!, log[1]!, log[0]!, log[2]!, log[3]!, log[2]!, log[4]!]);
    for (const socket of [a, b]) {
      await socket.waitFor((frame) => frame['seq'] === 5);
      const events = socket.frames.filter((frame) => 'seq' in frame);
      expect(events.map((frame) => frame['seq'])).toEqual([1, 2, 3, 4, 5]);
      expect(events[1]).toEqual(JSON.parse(JSON.stringify(log[1])));
    }
    // A socket opened later starts afresh: the repeat it never had is sent to it.
    const c = await connect(12);
    await publish(12, [log[4]!]);
    expect(await c.waitFor(ofType('new_message'))).toMatchObject({ seq: 5 });
  });

  it('holds one delivery subscription per user while a socket is open, and drops it after the last closes', async () => {
    const before = gateway.gateway.stats();
    const [a, b] = [await connect(14), await connect(14)];
    expect(gateway.gateway.stats().subscribedUsers).toBe(before.subscribedUsers + 1);
    await a.close();
    expect(gateway.gateway.stats().subscribedUsers).toBe(before.subscribedUsers + 1);
    await b.close();
    await vi.waitFor(() => expect(gateway.gateway.stats().subscribedUsers).toBe(before.subscribedUsers), { timeout: 5_000, interval: 10 });
  });

  it('ignores a payload on the delivery subject that is not a frame', async () => {
    const id = await conversation(15, 16);
    const [started] = (await readStream(pool, id)).map(unblockedFrameFor(15));
    const socket = await connect(15);
    fanoutNats.publish(deliverySubject(prefix, 15), 'not json');
    // A real frame after the junk, on the same subject: once it is in, the junk before it has been handled.
    await publish(15, [{ type: 'new_message', seq: 'one' }, { hello: 'world' }, started!]);
    await socket.waitFor(ofType('conversation_created'));
    expect(socket.frames.map((frame) => frame.type)).toEqual(['connected', 'conversation_created']);
  });
});

describe('limits', () => {
  it('caps sockets per user: 429 on an authenticated upgrade, 4429 after first-frame auth', async () => {
    await connect(20, { on: tight });
    await connect(20, { on: tight });
    expect(await upgradeStatus(tight.wsUrl, { token: await mintToken(20) })).toBe(429);
    const third = await openSocket(tight.wsUrl);
    third.send({ type: 'auth', token: await mintToken(20) });
    expect((await third.closed).code).toBe(4429);
    expect(await upgradeStatus(tight.wsUrl, { token: await mintToken(21) })).toBe(101);
  });

  it('terminates a peer that does not answer pings, and keeps one that does', async () => {
    const silent = await openSocket(fastPing.wsUrl, { token: await mintToken(22), autoPong: false });
    const healthy = await connect(23, { on: fastPing });
    const closed = await silent.closed;
    expect(closed.code).toBe(1006); // terminated: no closing handshake
    expect(healthy.ws.readyState).toBe(healthy.ws.OPEN);
  });

  it('closes a socket that does not read with 4008 once its send queue is over the bound', async () => {
    const id = await conversation(24, 25);
    const [event] = (await frames(id, 25, 1)).filter((frame) => frame.type === 'new_message');
    const slow = await connect(24, { on: tight });
    // Stop reading: the kernel buffers fill, then the server's queue grows.
    (slow.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const big = { ...event!, data: { ...event!.data, message: 'x'.repeat(4_000) } };
    const open = tight.gateway.stats().sockets;
    for (let batch = 0; batch < 40 && tight.gateway.stats().sockets === open; batch++) {
      await publish(24, Array.from({ length: 250 }, (_, i) => ({ ...big, seq: batch * 250 + i + 2 })));
      await sleep(20);
    }
    (slow.ws as unknown as { _socket: { resume(): void } })._socket.resume();
    const closed = await slow.closed;
    expect([4008, 1006]).toContain(closed.code);
    expect(tight.logs()).toMatch(/send queue full/);
  });
});

describe('recovery', () => {
  it('replays every event frame after ?since= in order, then goes live; a bad cursor gets an error and the socket stays', async () => {
    const id = await conversation(30, 31);
    const other = await conversation(32, 30);
    for (let i = 0; i < 3; i++) {
      await sendMessage(deps, { conversationId: id, senderId: 31, content: `a${i}` });
      await sendMessage(deps, { conversationId: other, senderId: 32, content: `b${i}` });
    }
    const log = [...(await readStream(pool, id)), ...(await readStream(pool, other))].sort((x, y) =>
      x.transactionId === y.transactionId ? Number(x.globalPosition - y.globalPosition) : x.transactionId < y.transactionId ? -1 : 1,
    );
    await waitForHorizon(id);
    await waitForHorizon(other);
    const since = encodeCursor(log[2]!);
    const socket = await connect(30, { query: `?since=${since}` });
    const replayed = await socket.waitForCount((frame) => 'seq' in frame, log.length - 3);
    expect(replayed).toEqual(log.slice(3).map((event) => JSON.parse(JSON.stringify(unblockedFrameFor(30)(event))) as unknown));

    const live = await sendMessage(deps, { conversationId: id, senderId: 31, content: 'live' });
    const [liveEvent] = await readStream(pool, id, { afterVersion: live.version - 1 });
    await publish(30, [unblockedFrameFor(30)(liveEvent!)]);
    expect(await socket.waitFor((frame) => frame['seq'] === live.version && frame['conversation_id'] === id)).toMatchObject({ type: 'new_message' });

  });

  it('answers ?since=garbage and a bad resume with invalid_cursor, then delivers the next message live', async () => {
    const id = await conversation(44, 45);
    const bad = await connect(44, { query: '?since=garbage' });
    expect((await bad.waitFor(ofType('error')))['data']).toMatchObject({ code: 'invalid_cursor' });
    const resumed = await bad.request({ type: 'resume', since: 'bm90LWEtY3Vyc29y' });
    expect(resumed).toMatchObject({ type: 'error', data: { code: 'invalid_cursor' } });
    const live = await sendMessage(deps, { conversationId: id, senderId: 45, content: 'live after a bad cursor' });
    const [liveEvent] = await readStream(pool, id, { afterVersion: live.version - 1 });
    await publish(44, [unblockedFrameFor(44)(liveEvent!)]);
    expect(await bad.waitFor(ofType('new_message'))).toMatchObject({ conversation_id: id, seq: live.version });
    expect(bad.ws.readyState).toBe(bad.ws.OPEN);
  });

  it('replays on a resume frame, acking how many frames it sent', async () => {
    const id = await conversation(33, 34);
    await sendMessage(deps, { conversationId: id, senderId: 34, content: 'x' });
    await sendMessage(deps, { conversationId: id, senderId: 34, content: 'y' });
    const [started] = await readStream(pool, id);
    await waitForHorizon(id);
    const socket = await connect(33);
    const ack = await socket.request({ type: 'resume', since: encodeCursor(started!) });
    expect(ack).toMatchObject({ type: 'ack', data: { replayed: 2, resync_required: false } });
    expect(socket.frames.filter((frame) => 'seq' in frame).map((frame) => frame['seq'])).toEqual([2, 3]);
  });

  it('sends resync_required instead of a catch-up over WS_CATCH_UP_LIMIT, then continues live', async () => {
    const id = await conversation(35, 36);
    for (let i = 0; i < 5; i++) await sendMessage(deps, { conversationId: id, senderId: 36, content: `r${i}` });
    const [started] = await readStream(pool, id);
    await waitForHorizon(id);
    const socket = await connect(35, { on: tight, query: `?since=${encodeCursor(started!)}` });
    expect(await socket.waitFor(ofType('resync_required'))).toMatchObject({ type: 'resync_required' });
    expect(socket.frames.filter((frame) => 'seq' in frame)).toEqual([]);
    const latest = (await readStream(pool, id)).at(-1)!;
    await publish(35, [unblockedFrameFor(35)(latest)]);
    expect(await socket.waitFor(ofType('new_message'))).toMatchObject({ seq: latest.version });
  });

  it('replays 500 long messages to a reader draining 64 KB/s at its pace: every frame, never a 4008 mid-replay', async () => {
    const id = await conversation(46, 47);
    const content = 'é'.repeat(300) + 'x'.repeat(700); // 1,000 characters, 1,300 bytes
    for (let batch = 0; batch < 5; batch++) {
      const sent = await sendMessages(deps, Array.from({ length: 100 }, () => ({ conversationId: id, senderId: 47, content, clientMsgId: null })));
      expect(sent.every((result) => result.status === 'fulfilled')).toBe(true);
    }
    const [started] = await readStream(pool, id);
    await waitForHorizon(id);

    const socket = await openSocket(`${smallQueue.wsUrl}?since=${encodeCursor(started!)}`, { token: await mintToken(46) });
    sockets.push(socket);
    const stop = drainAt(socket, 64 * 1024);
    try {
      const replayed = await socket.waitForCount((frame) => frame.type === 'new_message' || frame.type === 'resync_required', 500, 40_000);
      if (replayed.some((frame) => frame.type === 'resync_required')) {
        expect(replayed.filter((frame) => frame.type === 'resync_required')).toHaveLength(1);
      } else {
        expect(replayed.map((frame) => frame['seq'])).toEqual(Array.from({ length: 500 }, (_, i) => i + 2));
      }
    } finally {
      stop();
    }
    expect(socket.ws.readyState).toBe(socket.ws.OPEN);
    expect(smallQueue.logs()).not.toMatch(/send queue full/);
  });
});

/** Reads the socket's TCP stream at about `bytesPerSecond` (a token bucket refilled every 50 ms). */
function drainAt(socket: TestSocket, bytesPerSecond: number): () => void {
  const tcp = (socket.ws as unknown as { _socket: Socket })._socket;
  let allowance = 0;
  tcp.on('data', (chunk: Buffer) => {
    allowance -= chunk.length;
    if (allowance <= 0) tcp.pause();
  });
  tcp.pause();
  const timer = setInterval(() => {
    allowance = Math.min(allowance + bytesPerSecond / 20, bytesPerSecond / 20);
    if (allowance > 0) tcp.resume();
  }, 50);
  return () => {
    clearInterval(timer);
    tcp.resume();
  };
}
