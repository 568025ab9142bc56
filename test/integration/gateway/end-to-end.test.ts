import { sql, type DatabasePool } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { readStream } from '../../../src/event-store/read-stream.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { api, gatewayEnv, mintToken, openSocket, type Frame, type TestSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * Acceptance, with every role as a real process: relay, projector, fan-out and two gateways. User A (101)
 * is on gateway 1, user B (102) on gateway 2 with two sockets.
 */

const A = 101;
const B = 102;
let env: Record<string, string>;
let pool: DatabasePool;
let projector: RoleProcess;
const ports: number[] = [];
const gateways: RoleProcess[] = [];
const tokens = new Map<number, string>();
const sockets: TestSocket[] = [];
let conversationId: string;

async function startGatewayProcess(index: number): Promise<RoleProcess> {
  const role = await spawnRole({ name: `gateway-${index + 1}`, entry: 'src/gateway/main.ts', env: { ...env, PORT: String(ports[index]) } });
  gateways[index] = role;
  await role.waitForOutput(/gateway listening/, 90_000);
  return role;
}

const httpUrl = (index: number) => `http://127.0.0.1:${ports[index]}`;
const wsUrl = (index: number) => `ws://127.0.0.1:${ports[index]}/api/v1/chat/ws`;

async function connect(userId: number, gateway: number, query = ''): Promise<TestSocket> {
  const socket = await openSocket(`${wsUrl(gateway)}${query}`, { token: tokens.get(userId)! });
  sockets.push(socket);
  await socket.waitFor((frame) => frame.type === 'connected');
  return socket;
}

const send = (userId: number, gateway: number, message: string) =>
  api(httpUrl(gateway), 'POST', '/api/v1/chat/messages', { token: tokens.get(userId)!, body: { conversation_id: conversationId, message } });

const events = (socket: TestSocket): Frame[] => socket.frames.filter((frame) => 'seq' in frame && frame['conversation_id'] === conversationId);
const seqs = (socket: TestSocket): number[] => events(socket).map((frame) => frame['seq'] as number);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);
const lastCursor = (socket: TestSocket): string => events(socket).at(-1)!['cursor'] as string;

/** Whether a gateway has polled the read tables (read-consistency.ts) since `at` (a Postgres timestamp). */
async function readTablesPolledSince(at: string): Promise<boolean> {
  const polls = await pool.oneFirst(sql.type(z.object({ polls: z.number() }))`
    SELECT count(*)::int AS polls FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() AND query_start > ${at}::timestamptz
      AND query LIKE '%FROM "discussion" WHERE id = ANY%'`);
  return polls > 0;
}

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  env = {
    ...gatewayEnv({ databaseUrl, prefix }),
    FANOUT_ACK_WAIT_MS: '1000',
    // A sends about 80 messages within a minute here; the limit itself is tested in rest.test.ts.
    RATE_LIMIT_MESSAGES_PER_MINUTE: '1000',
    // A read waits for a projector held back (SIGSTOP) for as long as the test needs, however loaded the machine.
    READ_CONSISTENCY_TIMEOUT_MS: '60000',
  };
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 2 });
  ports.push(...(await getFreePorts(2)));
  const relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
  projector = await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env });
  const fanout = await spawnRole({ name: 'fanout', entry: 'src/fanout/main.ts', env });
  await Promise.all([startGatewayProcess(0), startGatewayProcess(1)]);
  await relay.waitForOutput(/leadership acquired/);
  await projector.waitForOutput(/projecting/);
  // The fan-out's durable starts at the stream's end when first created: nothing may be appended before.
  await fanout.waitForOutput(/fanning out/);
  for (const user of [A, B]) tokens.set(user, await mintToken(user));
}, 240_000);
afterAll(async () => {
  for (const socket of sockets) socket.ws.terminate();
  await stopAllRoles();
  await pool?.end();
});

describe('the chat, end to end across two gateway processes', () => {
  let a: TestSocket;
  let b1: TestSocket;
  let b2: TestSocket;

  it('delivers conversation_created and new_message with consecutive seq to every socket, the sender\'s too', async () => {
    a = await connect(A, 0);
    b1 = await connect(B, 1);
    b2 = await connect(B, 1);
    const created = await api(httpUrl(0), 'POST', '/api/v1/chat/conversations', { token: tokens.get(A)!, body: { user_id: B } });
    expect(created.status).toBe(201);
    conversationId = (created.body['data'] as { id: string }).id;

    const ack = await a.request({ type: 'send_message', conversation_id: conversationId, content: 'over the socket', client_msg_id: 'e2e-1' });
    expect(ack).toMatchObject({ type: 'ack', data: { msg: 'over the socket', seq: 2 } });
    const rest = await send(A, 0, 'over REST');
    expect(rest.status).toBe(201);

    for (const socket of [a, b1, b2]) {
      await socket.waitForCount((frame) => frame.type === 'new_message' && frame['conversation_id'] === conversationId, 2);
      expect(seqs(socket)).toEqual([1, 2, 3]);
      const messages = events(socket).filter((frame) => frame.type === 'new_message');
      expect(messages.map((frame) => frame['data'])).toMatchObject([
        { sender_id: A, message: 'over the socket', client_msg_id: 'e2e-1', read_at: null },
        { sender_id: A, message: 'over REST', client_msg_id: null },
      ]);
      expect(events(socket)[0]).toMatchObject({ type: 'conversation_created', data: { id: conversationId, user1_id: A, user2_id: B } });
    }
  });

  it('answers a REST read on the other gateway right after a send by waiting for the projector, never with stale data', async () => {
    // The projector is held back, so the read tables are certain to be behind the acknowledged send.
    projector.kill('SIGSTOP');
    let reading: Promise<Awaited<ReturnType<typeof api>>>;
    try {
      const sent = await send(A, 0, 'read me at once');
      expect(sent.status).toBe(201);
      const issuedAt = await pool.oneFirst(sql.type(z.object({ at: z.string() }))`SELECT clock_timestamp()::text AS at`);
      let answered = false;
      reading = api(httpUrl(1), 'GET', `/api/v1/chat/conversations/${conversationId}/messages?limit=1`, { token: tokens.get(A)! });
      void reading.finally(() => (answered = true));
      // The other gateway is polling the read tables for the conversation: the read arrived and waits.
      await waitUntil('the other gateway to wait for the read tables', () => readTablesPolledSince(issuedAt), { timeoutMs: 20_000, intervalMs: 20 });
      expect(answered).toBe(false);
    } finally {
      projector.kill('SIGCONT');
    }
    const page = await reading;
    expect(page.status).toBe(200);
    expect((page.body['data'] as { msg: string }[]).map((m) => m.msg)).toEqual(['read me at once']);
    for (const socket of [a, b1, b2]) await socket.waitFor((frame) => frame['seq'] === 4);
  });

  it('carries typing from A to both of B\'s sockets without storing it, and read receipts from B to A', async () => {
    const before = (await readStream(pool, conversationId)).length;
    expect(await a.request({ type: 'typing', conversation_id: conversationId, is_typing: true })).toMatchObject({ type: 'ack' });
    for (const socket of [b1, b2]) {
      expect(await socket.waitFor((frame) => frame.type === 'typing')).toMatchObject({
        conversation_id: conversationId,
        data: { user_id: A, is_typing: true },
      });
    }
    expect(a.frames.filter((frame) => frame.type === 'typing')).toEqual([]);
    expect((await readStream(pool, conversationId)).length).toBe(before);

    expect(await b1.request({ type: 'read', conversation_id: conversationId })).toMatchObject({ type: 'ack', data: { up_to_seq: 4 } });
    for (const socket of [a, b1, b2]) {
      expect(await socket.waitFor((frame) => frame.type === 'messages_read')).toMatchObject({ seq: 5, data: { reader_id: B } });
    }
    expect(seqs(a)).toEqual(range(1, 5));
  });

  it('replays exactly the 20 messages B missed while disconnected, in order, then live ones', async () => {
    const cursor = lastCursor(b1);
    await Promise.all([b1.close(), b2.close()]);
    for (let i = 1; i <= 20; i++) expect((await send(A, 0, `missed ${i}`)).status).toBe(201);
    await a.waitFor((frame) => frame['seq'] === 25);

    const back = await connect(B, 1, `?since=${cursor}`);
    await back.waitForCount((frame) => frame.type === 'new_message', 20);
    expect(seqs(back)).toEqual(range(6, 25));
    expect(events(back).map((frame) => (frame['data'] as { message: string }).message)).toEqual(range(1, 20).map((i) => `missed ${i}`));

    expect((await send(A, 0, 'live again')).status).toBe(201);
    await back.waitFor((frame) => frame['seq'] === 26);
    expect(seqs(back)).toEqual(range(6, 26));
    await back.close();
  });

  it('does the same when B\'s gateway is killed with SIGKILL and restarted in between', async () => {
    const b = await connect(B, 1);
    expect((await send(A, 0, 'before the crash')).status).toBe(201);
    await b.waitFor((frame) => frame['seq'] === 27);
    const cursor = lastCursor(b);

    gateways[1]!.kill('SIGKILL');
    await gateways[1]!.exited;
    expect((await b.closed).code).toBe(1006);
    for (let i = 1; i <= 20; i++) expect((await send(A, 0, `while down ${i}`)).status).toBe(201);
    await startGatewayProcess(1);

    const back = await connect(B, 1, `?since=${cursor}`);
    await back.waitForCount((frame) => frame.type === 'new_message', 20);
    expect(seqs(back)).toEqual(range(28, 47));
    expect(await back.request({ type: 'send_message', conversation_id: conversationId, content: 'I am back' })).toMatchObject({ type: 'ack' });
    await back.waitFor((frame) => frame['seq'] === 48);
    await a.waitFor((frame) => frame['seq'] === 48);
    expect(seqs(back)).toEqual(range(28, 48));
    expect(seqs(a)).toEqual(range(1, 48));
  });

  it('has no gap and no duplicate when B resumes while A keeps sending (catch-up and live overlap)', async () => {
    const cursor = lastCursor(a); // seq 48
    let sent = 0;
    const sending = (async () => {
      for (; sent < 30; sent++) expect((await send(A, 0, `overlap ${sent}`)).status).toBe(201);
    })();
    while (sent < 10) await new Promise((resolve) => setTimeout(resolve, 5));
    const back = await connect(B, 1, `?since=${cursor}`);
    await sending;
    // Barrier: one more message; a repeat or a late catch-up frame would come before it.
    expect((await send(A, 0, 'after the overlap')).status).toBe(201);
    await back.waitFor((frame) => frame['seq'] === 79);
    expect(seqs(back)).toEqual(range(49, 79));
    await back.close();
  });

  it('closes its sockets with 1012 (reconnect elsewhere) and exits 0 on SIGTERM', async () => {
    const b = await connect(B, 1);
    gateways[1]!.kill('SIGTERM');
    expect((await b.closed).code).toBe(1012);
    expect(await gateways[1]!.exited).toBe(0);
    expect(gateways[1]!.output()).toMatch(/stopped/);
  });
});
