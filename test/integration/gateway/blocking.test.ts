import type { DatabasePool } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conversationDecider } from '../../../src/commands/conversation/conversation.js';
import { messageSent } from '../../../src/commands/conversation/events.js';
import { handleCommand } from '../../../src/commands/handle-command.js';
import { readStream } from '../../../src/event-store/read-stream.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { api, gatewayEnv, mintToken, openSocket, type Frame, type TestSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, startChatRoles, stopAllRoles, type RoleProcess } from '../../support/processes.js';

/**
 * A block holds on every live path and on the resume, with every role as a real process: relay, projector,
 * fan-out and a gateway. A (501) blocks their conversation with B (502), who has two sockets; C (503) shares a
 * conversation with each of them, whose frames are the barriers: the fan-out publishes in feed order on each
 * user's one delivery subject, so once a frame of C's conversation appended after the events at hand has
 * arrived, every frame of those events that was going to arrive has.
 */

const A = 501;
const B = 502;
const C = 503;
const WAIT_MS = 30_000;
let env: Record<string, string>;
let pool: DatabasePool;
let port: number;
let fanout: RoleProcess;
const tokens = new Map<number, string>();
const sockets: TestSocket[] = [];
let ab: string;
let bc: string;
let ac: string;
let a: TestSocket;
let b1: TestSocket;
let b2: TestSocket;
/** The cursor of B's last frame of `ab` before the block. */
let beforeTheBlock: string;

const httpUrl = () => `http://127.0.0.1:${port}`;

async function connect(userId: number, query = ''): Promise<TestSocket> {
  const socket = await openSocket(`ws://127.0.0.1:${port}/api/v1/chat/ws${query}`, { token: tokens.get(userId)! });
  sockets.push(socket);
  await socket.waitFor((frame) => frame.type === 'connected');
  return socket;
}

async function start(userId: number, otherUserId: number): Promise<string> {
  const created = await api(httpUrl(), 'POST', '/api/v1/chat/conversations', { token: tokens.get(userId)!, body: { user_id: otherUserId } });
  expect(created.status).toBe(201);
  return (created.body['data'] as { id: string }).id;
}

async function send(userId: number, conversationId: string, message: string): Promise<number> {
  const sent = await api(httpUrl(), 'POST', '/api/v1/chat/messages', { token: tokens.get(userId)!, body: { conversation_id: conversationId, message } });
  expect(sent.status).toBe(201);
  return (sent.body['data'] as { seq: number }).seq;
}

const block = (conversationId: string, userId: number) =>
  handleCommand(pool, conversationDecider, conversationId, { type: 'BlockConversation', userId, now: new Date() });
const unblock = (conversationId: string, userId: number) =>
  handleCommand(pool, conversationDecider, conversationId, { type: 'UnblockConversation', userId, now: new Date() });

/** Deletes `text`, a message of `requesterId` in the conversation, for everyone: the decider's command on the log. */
async function deleteMessage(conversationId: string, requesterId: number, text: string): Promise<string> {
  const stored = (await readStream(pool, conversationId))
    .map((event) => ({ event, sent: messageSent.safeParse(event) }))
    .find(({ sent }) => sent.success && sent.data.data.content === text);
  const sent = stored!.sent.data!.data;
  await handleCommand(pool, conversationDecider, conversationId, {
    type: 'DeleteMessage',
    requesterId,
    message: { id: sent.message_id, version: stored!.event.version, senderId: sent.sender_id },
    now: new Date(),
  });
  return sent.message_id;
}

/** The socket's event frames of one conversation (typing frames have no `seq`). */
const eventsOf = (socket: TestSocket, conversationId: string): Frame[] =>
  socket.frames.filter((frame) => 'seq' in frame && frame['conversation_id'] === conversationId);
const shape = (frames: readonly Frame[]) => frames.map((frame) => [frame['seq'], frame.type]);
const typingOf = (socket: TestSocket): Frame[] => socket.frames.filter((frame) => frame.type === 'typing');

/** Appends a message of C in `conversationId` and waits until each socket has its frame: the barrier. */
async function barrier(conversationId: string, ...at: TestSocket[]): Promise<void> {
  const seq = await send(C, conversationId, `barrier ${Math.random()}`);
  for (const socket of at) {
    await socket.waitFor((frame) => frame['conversation_id'] === conversationId && frame['seq'] === seq, WAIT_MS);
  }
}

const errorCode = (frame: Frame) => (frame['data'] as { code?: string } | undefined)?.code;

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  env = { ...gatewayEnv({ databaseUrl, prefix: testPrefix() }), FANOUT_ACK_WAIT_MS: '1000', RATE_LIMIT_MESSAGES_PER_MINUTE: '1000' };
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 2 });
  [port] = (await getFreePorts(1)) as [number];
  ({ fanout } = await startChatRoles(env, [port]));
  for (const user of [A, B, C]) tokens.set(user, await mintToken(user));
}, 240_000);
afterAll(async () => {
  for (const socket of sockets) socket.ws.terminate();
  await stopAllRoles();
  await pool?.end();
});

describe('a block, through the real roles', { timeout: 180_000 }, () => {
  it('gives the blocker conversation_blocked and the blocked user conversation_removed, then nothing of it to them', async () => {
    a = await connect(A);
    b1 = await connect(B);
    b2 = await connect(B);
    ab = await start(A, B);
    bc = await start(C, B);
    ac = await start(C, A);
    await send(B, ab, 'from B before the block');
    await send(A, ab, 'from A, deleted while blocked');
    await send(A, ab, 'from A before the block');
    for (const socket of [a, b1, b2]) await socket.waitFor((frame) => frame['conversation_id'] === ab && frame['seq'] === 4, WAIT_MS);
    beforeTheBlock = eventsOf(b1, ab).at(-1)!['cursor'] as string;

    await block(ab, A); // seq 5
    const blocked = await a.waitFor((frame) => frame.type === 'conversation_blocked', WAIT_MS);
    expect(blocked).toMatchObject({
      conversation_id: ab,
      seq: 5,
      data: { id: ab, user1_id: A, user2_id: B, blocked_by: A, last_message_content: 'from A before the block' },
    });
    for (const socket of [b1, b2]) {
      const removed = await socket.waitFor((frame) => frame.type === 'conversation_removed', WAIT_MS);
      expect(Object.keys(removed).sort()).toEqual(['conversation_id', 'cursor', 'seq', 'timestamp', 'type']);
      expect(removed).toMatchObject({ conversation_id: ab, seq: 5 });
    }

    // The blocker may still read and delete; for the blocked user the conversation does not exist.
    expect(await a.request({ type: 'read', conversation_id: ab })).toMatchObject({ type: 'ack', data: { up_to_seq: 2 } }); // seq 6
    await deleteMessage(ab, A, 'from A, deleted while blocked'); // seq 7
    expect(errorCode(await a.request({ type: 'send_message', conversation_id: ab, content: 'refused' }))).toBe('blocked');
    expect(errorCode(await a.request({ type: 'typing', conversation_id: ab, is_typing: true }))).toBe('blocked');
    for (const type of ['read', 'join_conversation']) {
      expect(errorCode(await b1.request({ type, conversation_id: ab }))).toBe('not_found');
    }
    expect(errorCode(await b1.request({ type: 'send_message', conversation_id: ab, content: 'refused' }))).toBe('not_found');
    expect(errorCode(await b1.request({ type: 'typing', conversation_id: ab, is_typing: true }))).toBe('not_found');
    expect((await readStream(pool, ab)).length).toBe(7);

    // Barriers: a message of C to each, and a typing of C to B on the signal path A's typing would have taken.
    await barrier(bc, b1, b2);
    await barrier(ac, a);
    expect(await (await connect(C)).request({ type: 'typing', conversation_id: bc, is_typing: true })).toMatchObject({ type: 'ack' });
    for (const socket of [b1, b2]) await socket.waitFor((frame) => frame.type === 'typing' && frame['conversation_id'] === bc, WAIT_MS);

    for (const socket of [b1, b2]) {
      expect(shape(eventsOf(socket, ab))).toEqual([
        [1, 'conversation_created'],
        [2, 'new_message'],
        [3, 'new_message'],
        [4, 'new_message'],
        [5, 'conversation_removed'],
      ]);
      expect(typingOf(socket).map((frame) => [frame['conversation_id'], (frame['data'] as { user_id: number }).user_id])).toEqual([[bc, C]]);
    }
    expect(shape(eventsOf(a, ab))).toEqual([
      [1, 'conversation_created'],
      [2, 'new_message'],
      [3, 'new_message'],
      [4, 'new_message'],
      [5, 'conversation_blocked'],
      [6, 'messages_read'],
      [7, 'message_deleted'],
    ]);
  });

  it("gives the blocked user's resume from before the block nothing of the conversation past it", async () => {
    const back = await connect(B, `?since=${beforeTheBlock}`);
    await barrier(bc, back);
    expect(shape(eventsOf(back, ab))).toEqual([[5, 'conversation_removed']]);
    // The frames of C's conversation after the cursor did come: the resume itself worked.
    expect(eventsOf(back, bc).length).toBeGreaterThanOrEqual(2);
    await back.close();
  });

  it('keeps the block after a fan-out restart: the block in force is read from the log', async () => {
    fanout.kill('SIGKILL');
    await fanout.exited;
    await deleteMessage(ab, A, 'from A before the block'); // seq 8, while no fan-out runs
    fanout = await spawnRole({ name: 'fanout', entry: 'src/fanout/main.ts', env });
    await a.waitFor((frame) => frame['conversation_id'] === ab && frame['seq'] === 8, WAIT_MS * 2);
    await barrier(bc, b1, b2);
    for (const socket of [b1, b2]) expect(eventsOf(socket, ab).at(-1)).toMatchObject({ seq: 5, type: 'conversation_removed' });
  });

  it('gives conversation_unblocked and conversation_restored with the Conversation, then the frames again', async () => {
    await unblock(ab, A); // seq 9
    expect(await a.waitFor((frame) => frame.type === 'conversation_unblocked', WAIT_MS)).toMatchObject({
      conversation_id: ab,
      seq: 9,
      data: { id: ab, user1_id: A, user2_id: B, blocked_by: null },
    });
    for (const socket of [b1, b2]) {
      expect(await socket.waitFor((frame) => frame.type === 'conversation_restored', WAIT_MS)).toMatchObject({
        conversation_id: ab,
        seq: 9,
        data: { id: ab, user1_id: A, user2_id: B, blocked_by: null },
      });
    }
    expect(await send(A, ab, 'after the unblock')).toBe(10);
    for (const socket of [b1, b2]) {
      await socket.waitFor((frame) => frame['conversation_id'] === ab && frame['seq'] === 10, WAIT_MS);
      expect(shape(eventsOf(socket, ab)).slice(4)).toEqual([
        [5, 'conversation_removed'],
        [9, 'conversation_restored'],
        [10, 'new_message'],
      ]);
    }
    const back = await connect(B, `?since=${beforeTheBlock}`);
    await barrier(bc, back);
    expect(shape(eventsOf(back, ab))).toEqual([
      [5, 'conversation_removed'],
      [9, 'conversation_restored'],
      [10, 'new_message'],
    ]);
    expect(eventsOf(back, ab)[1]).toMatchObject({ data: { id: ab, blocked_by: null } });
    await back.close();
  });

  it('sends message_deleted to both participants', async () => {
    await send(B, ab, 'from B, to be deleted'); // seq 11
    const id = await deleteMessage(ab, B, 'from B, to be deleted'); // seq 12
    for (const socket of [a, b1, b2]) {
      const deleted = await socket.waitFor((frame) => frame.type === 'message_deleted' && frame['seq'] === 12, WAIT_MS);
      expect(deleted).toMatchObject({ conversation_id: ab, data: { id } });
      expect((deleted['data'] as { deleted_at: string }).deleted_at).toBe(deleted['timestamp']);
    }
  });
});
