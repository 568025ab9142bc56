import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { decodeResumeCursor } from '../../../src/delivery/cursor.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { api, gatewayEnv, mintToken, openSocket, type Frame, type TestSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { startChatRoles, stopAllRoles, type RoleProcess } from '../../support/processes.js';

/**
 * The fast path (docs/delivery.md), through the real roles: relay, projector, fan-out and two gateways as
 * processes. A (601) is on the first gateway, B (602) on the second, C (603) shares a conversation with B. With
 * the fan-out frozen (SIGSTOP), nothing reaches a socket by the ordered path, so what arrives came by the fast
 * path: from A's gateway, after the commit, to B's gateway.
 */

const A = 601;
const B = 602;
const C = 603;
const WAIT_MS = 30_000;
const ports: number[] = [];
let fanout: RoleProcess;
const tokens = new Map<number, string>();
const sockets: TestSocket[] = [];

const httpUrl = (gateway: number) => `http://127.0.0.1:${ports[gateway]}`;

async function connect(userId: number, gateway: number, since?: string): Promise<TestSocket> {
  const query = since === undefined ? '' : `?since=${since}`;
  const socket = await openSocket(`ws://127.0.0.1:${ports[gateway]}/api/v1/chat/ws${query}`, { token: tokens.get(userId)! });
  sockets.push(socket);
  await socket.waitFor((frame) => frame.type === 'connected');
  return socket;
}

async function start(userId: number, otherUserId: number): Promise<string> {
  const created = await api(httpUrl(0), 'POST', '/api/v1/chat/conversations', { token: tokens.get(userId)!, body: { user_id: otherUserId } });
  expect(created.status).toBe(201);
  return (created.body['data'] as { id: string }).id;
}

async function send(userId: number, conversationId: string, message: string): Promise<number> {
  const sent = await api(httpUrl(0), 'POST', '/api/v1/chat/messages', { token: tokens.get(userId)!, body: { conversation_id: conversationId, message } });
  expect(sent.status).toBe(201);
  return (sent.body['data'] as { seq: number }).seq;
}

const frameOf = (conversationId: string, seq: number) => (frame: Frame) => frame['conversation_id'] === conversationId && frame['seq'] === seq;
const eventFrames = (socket: TestSocket) => socket.frames.filter((frame) => 'seq' in frame).map((frame) => [frame['conversation_id'], frame['seq'], frame.type]);

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const env = { ...gatewayEnv({ databaseUrl, prefix: testPrefix() }), FANOUT_ACK_WAIT_MS: '1000' };
  ports.push(...(await getFreePorts(2)));
  ({ fanout } = await startChatRoles(env, ports));
  for (const user of [A, B, C]) tokens.set(user, await mintToken(user));
}, 240_000);

afterAll(async () => {
  fanout?.kill('SIGCONT');
  for (const socket of sockets) socket.ws.terminate();
  await stopAllRoles();
});

describe('the fast path, through the real roles', { timeout: 180_000 }, () => {
  it('delivers a message across gateways while the ordered path is frozen, and a resume from its cursor misses and repeats nothing', async () => {
    // given B on the second gateway, who has had AB's start (from A), and BC's start and a message of C
    const a = await connect(A, 0);
    const b = await connect(B, 1);
    const ab = await start(A, B);
    const bc = await start(C, B);
    expect(await send(C, bc, 'hello B')).toBe(2);
    await b.waitFor(frameOf(ab, 1), WAIT_MS);
    await b.waitFor(frameOf(bc, 2), WAIT_MS);
    await a.waitFor(frameOf(ab, 1), WAIT_MS);

    // when the fan-out is frozen, B marks BC read (an event only the ordered path carries), then A sends in AB
    fanout.kill('SIGSTOP');
    const read = await api(httpUrl(1), 'PUT', `/api/v1/chat/conversations/${bc}/read`, { token: tokens.get(B)! });
    expect(read.status).toBe(200);
    expect(read.body['data']).toMatchObject({ up_to_seq: 2 });
    const seq = await send(A, ab, 'ahead of the pipeline');
    expect(seq).toBe(2);

    // then B gets A's message on the other gateway, and A its own echo, with the fan-out still frozen
    const early = await b.waitFor(frameOf(ab, 2), WAIT_MS);
    await a.waitFor(frameOf(ab, 2), WAIT_MS);
    expect(early).toMatchObject({ type: 'new_message', data: { message: 'ahead of the pipeline', sender_id: A } });
    expect(b.frames.some(frameOf(bc, 3))).toBe(false);
    // and its cursor says what was sent ahead of the ordered position: AB up to 2 (and BC up to 2 when C's
    // message also came by the fast path and the fan-out froze before its ordered copy reached B)
    const cursor = early['cursor'] as string;
    const floors = decodeResumeCursor(cursor)?.floors;
    expect(floors?.get(ab)).toBe(2);
    expect([...(floors?.keys() ?? [])].every((conversation) => conversation === ab || conversation === bc)).toBe(true);

    // when B reconnects from that cursor, with the fan-out still frozen
    b.ws.terminate();
    const resumed = await connect(B, 0, cursor);
    // then the catch-up brings B's read of BC, which the message's own position would have skipped, and not
    // the message again
    await resumed.waitFor(frameOf(bc, 3), WAIT_MS);
    expect(eventFrames(resumed)).toEqual([[bc, 3, 'messages_read']]);

    // and once the fan-out runs again, its late copies are not sent twice: the next message (the barrier,
    // after them on the ordered path) is the only frame that follows
    fanout.kill('SIGCONT');
    const next = await send(A, ab, 'after the thaw');
    await resumed.waitFor(frameOf(ab, next), WAIT_MS);
    await a.waitFor(frameOf(ab, next), WAIT_MS);
    const barrier = await send(C, bc, 'barrier');
    await resumed.waitFor(frameOf(bc, barrier), WAIT_MS);
    expect(eventFrames(resumed)).toEqual([
      [bc, 3, 'messages_read'],
      [ab, 3, 'new_message'],
      [bc, 4, 'new_message'],
    ]);
    // A's socket saw each of AB's events once, in order, whichever path brought it
    expect(eventFrames(a).filter(([conversation]) => conversation === ab).map(([, s]) => s)).toEqual([1, 2, 3]);
  });

  it('leaves a conversation the socket has had no frame of to the ordered path', async () => {
    // given D, a user whose socket has had no frame of a new conversation with A
    const D = 604;
    tokens.set(D, await mintToken(D));
    const d = await connect(D, 1);
    fanout.kill('SIGSTOP');
    try {
      const ad = await start(A, D);
      // when A sends in it while the ordered path is frozen
      await send(A, ad, 'first words');
      const barrier = await send(A, ad, 'barrier');
      // then nothing reaches D until the ordered path brings the conversation's start, then everything in order
      expect(eventFrames(d)).toEqual([]);
      fanout.kill('SIGCONT');
      await d.waitFor(frameOf(ad, barrier), WAIT_MS);
      expect(eventFrames(d)).toEqual([
        [ad, 1, 'conversation_created'],
        [ad, 2, 'new_message'],
        [ad, 3, 'new_message'],
      ]);
    } finally {
      fanout.kill('SIGCONT');
    }
  });

  it('sends the first message a socket gets of a conversation by the fast path when what came before was before the socket', async () => {
    // given a conversation of A and E started, then E's socket opened on the other gateway: it has no frame of it
    const E = 605;
    tokens.set(E, await mintToken(E));
    const ae = await start(A, E);
    const e = await connect(E, 1);
    fanout.kill('SIGSTOP');
    try {
      // when A sends in it while the ordered path is frozen
      const seq = await send(A, ae, 'first since you connected');
      // then E gets it by the fast path
      const early = await e.waitFor(frameOf(ae, seq), WAIT_MS);
      expect(early).toMatchObject({ type: 'new_message', data: { message: 'first since you connected', sender_id: A } });
      expect(decodeResumeCursor(early['cursor'] as string)?.floors.get(ae)).toBe(seq);
    } finally {
      fanout.kill('SIGCONT');
    }
    // and once the ordered path runs again, its copy is not sent twice: the barrier is the only frame that follows
    const barrier = await send(A, ae, 'barrier');
    await e.waitFor(frameOf(ae, barrier), WAIT_MS);
    expect(eventFrames(e)).toEqual([
      [ae, 2, 'new_message'],
      [ae, 3, 'new_message'],
    ]);
  });
});
