import type { DatabasePool } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { readStream } from '../../../src/event-store/read-stream.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { api, gatewayEnv, mintToken } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * A deploy, with every role a real process: two gateways, 1,000 sockets in 500 conversations, three in four
 * on the gateway that gets SIGTERM, messages flowing the whole time. Its /ready turns 503 first; after the
 * delay its sockets close with 1012, spread over the window; each client resumes on the other gateway from
 * its last cursor, resending what was not acked; in the end every user has every event of its conversation
 * exactly once, and every ack names a message in the log.
 */

const USERS = 1_000;
const FIRST_USER = 5_001;
const DRAINED = 0;
const READY_DELAY_MS = 1_500;
const DRAIN_WINDOW_MS = 6_000;
/** Messages offered per second, all clients together, from the clients connected at that moment. */
const MESSAGES_PER_SECOND = 50;

type Close = { readonly code: number; readonly at: number; readonly gateway: number };

/** One user's client: a plain `ws` socket, its last cursor, what it received and what it has not had acked. */
type Client = {
  readonly userId: number;
  readonly token: string;
  conversationId: string;
  gateway: number;
  ws: WebSocket | null;
  connected: boolean;
  cursor: string | null;
  /** How many times each seq of the conversation arrived, over all of this client's sockets. */
  readonly seen: Map<number, number>;
  /** Sent, not acked yet: client_msg_id -> content; resent after each reconnect. */
  readonly pending: Map<string, string>;
  /** client_msg_id -> the acked message's id and seq. */
  readonly acked: Map<string, { id: string; seq: number }>;
  readonly closes: Close[];
  /** Errors other than `unavailable` (a send refused by a draining socket). */
  readonly errors: unknown[];
  /** Connection attempts that failed before `connected`. */
  readonly retries: { gateway: number; code: number; failure: string }[];
  sent: number;
};

let env: Record<string, string>;
let pool: DatabasePool;
const ports: number[] = [];
const gateways: RoleProcess[] = [];
let drainedOpsPort: number;
const clients: Client[] = [];
let stopping = false;

const wsUrl = (gateway: number) => `ws://127.0.0.1:${ports[gateway]}/api/v1/chat/ws`;
const httpUrl = (gateway: number) => `http://127.0.0.1:${ports[gateway]}`;
const gatewayOf = (index: number) => (index % 4 === 3 ? 1 - DRAINED : DRAINED);

function sendMessage(client: Client, clientMsgId: string, content: string): void {
  client.ws?.send(JSON.stringify({ type: 'send_message', request_id: clientMsgId, conversation_id: client.conversationId, content, client_msg_id: clientMsgId }));
}

function onFrame(client: Client, frame: Record<string, unknown>): void {
  if (typeof frame['seq'] === 'number' && typeof frame['cursor'] === 'string') {
    client.seen.set(frame['seq'], (client.seen.get(frame['seq']) ?? 0) + 1);
    client.cursor = frame['cursor'];
  } else if (frame['type'] === 'connected') {
    client.connected = true;
    for (const [clientMsgId, content] of client.pending) sendMessage(client, clientMsgId, content);
  } else if (frame['type'] === 'ack') {
    const clientMsgId = frame['request_id'] as string;
    const message = frame['data'] as { id: string; seq: number };
    client.pending.delete(clientMsgId);
    client.acked.set(clientMsgId, { id: message.id, seq: message.seq });
  } else if (frame['type'] === 'error') {
    if ((frame['data'] as { code: string }).code !== 'unavailable') client.errors.push(frame);
  }
}

/** Opens the client's socket to `gateway`, with `?since=` its last cursor; on a close, goes to the other gateway. */
function connect(client: Client, gateway: number): void {
  const since = client.cursor === null ? '' : `?since=${client.cursor}`;
  const ws = new WebSocket(`${wsUrl(gateway)}${since}`, { headers: { authorization: `Bearer ${client.token}` } });
  client.ws = ws;
  client.gateway = gateway;
  client.connected = false;
  let failure = '';
  ws.on('error', (error) => void (failure = error.message));
  ws.on('message', (data: Buffer) => onFrame(client, JSON.parse(data.toString('utf8')) as Record<string, unknown>));
  ws.on('close', (code) => {
    const wasConnected = client.connected;
    client.connected = false;
    if (stopping) return;
    if (!wasConnected) {
      // Refused or cut before `connected`: try the same gateway again, as a client would.
      client.retries.push({ gateway, code, failure });
      setTimeout(() => connect(client, gateway), 200);
      return;
    }
    client.closes.push({ code, at: Date.now(), gateway });
    connect(client, 1 - gateway);
  });
}

/** Every `interval`, a few connected clients send one message each. */
function startTraffic(): () => void {
  const everyMs = 50;
  const perTick = Math.max(1, Math.round((MESSAGES_PER_SECOND * everyMs) / 1_000));
  const timer = setInterval(() => {
    for (let i = 0; i < perTick; i++) {
      const client = clients[Math.floor(Math.random() * clients.length)]!;
      if (!client.connected) continue;
      const clientMsgId = `u${client.userId}-${++client.sent}`;
      client.pending.set(clientMsgId, `message ${clientMsgId}`);
      sendMessage(client, clientMsgId, `message ${clientMsgId}`);
    }
  }, everyMs);
  return () => clearInterval(timer);
}

/** Where the clients stand, for a failure's message. */
function progress(): string {
  const count = (test: (client: Client) => boolean) => clients.filter(test).length;
  return JSON.stringify({
    connected: count((client) => client.connected),
    onDrained: count((client) => client.gateway === DRAINED),
    closed: count((client) => client.closes.length > 0),
    pending: clients.reduce((sum, client) => sum + client.pending.size, 0),
    errors: clients.flatMap((client) => client.errors).slice(0, 5),
    retries: clients.flatMap((client) => client.retries).slice(0, 5),
    closeCodes: [...new Set(clients.flatMap((client) => client.closes.map((close) => close.code)))],
  });
}

/** waitUntil for a condition on the clients, the clients' state in its error. */
async function clientsUntil(what: string, condition: () => boolean, timeoutMs = 150_000): Promise<void> {
  try {
    await waitUntil(what, () => Promise.resolve(condition()), { intervalMs: 20, timeoutMs });
  } catch (error) {
    throw new Error(`${String(error)}: ${progress()}\n${gateways.map((gateway) => gateway.output().slice(-3_000)).join('\n---\n')}`);
  }
}

async function inBatches<T>(items: readonly T[], size: number, task: (item: T) => Promise<void>): Promise<void> {
  for (let start = 0; start < items.length; start += size) await Promise.all(items.slice(start, start + size).map(task));
}

/** `/ready` of the drained gateway, polled until stopped: the time of its first 503. */
function watchReadiness(): { first503: () => number | undefined; statuses: number[]; stop(): void } {
  let first503: number | undefined;
  const statuses: number[] = [];
  let running = true;
  void (async () => {
    while (running) {
      try {
        const response = await fetch(`http://127.0.0.1:${drainedOpsPort}/ready`);
        await response.body?.cancel();
        statuses.push(response.status);
        if (response.status === 503) first503 ??= Date.now();
      } catch {
        // The ops server closes at the end of the shutdown.
        running = false;
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return { first503: () => first503, statuses, stop: () => void (running = false) };
}

/** What a new connection to `gateway` gets: `open`, or the error (a refused upgrade names its status). */
async function tryConnect(gateway: number, token: string): Promise<string> {
  const ws = new WebSocket(wsUrl(gateway), { headers: { authorization: `Bearer ${token}` } });
  return new Promise<string>((resolve) => {
    ws.once('open', () => {
      ws.terminate();
      resolve('open');
    });
    ws.once('error', (error) => resolve(String(error)));
  });
}

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  env = {
    ...gatewayEnv({ databaseUrl, prefix }),
    FANOUT_ACK_WAIT_MS: '1000',
    RATE_LIMIT_MESSAGES_PER_MINUTE: '100000',
    SHUTDOWN_READY_DELAY_MS: String(READY_DELAY_MS),
    WS_DRAIN_WINDOW_MS: String(DRAIN_WINDOW_MS),
  };
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 2 });
  ports.push(...(await getFreePorts(2)));
  const relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
  const projector = await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env });
  const fanout = await spawnRole({ name: 'fanout', entry: 'src/fanout/main.ts', env });
  for (const index of [0, 1]) {
    gateways[index] = await spawnRole({ name: `gateway-${index + 1}`, entry: 'src/gateway/main.ts', env: { ...env, PORT: String(ports[index]) } });
  }
  await Promise.all(gateways.map((gateway) => gateway.waitForOutput(/gateway listening/, 100_000)));
  drainedOpsPort = Number(/(\d+)/.exec(await gateways[DRAINED]!.waitForOutput(/ops server on port (\d+)/))?.[1]);
  await relay.waitForOutput(/leadership acquired/, 60_000);
  await projector.waitForOutput(/projecting/, 60_000);
  await fanout.waitForOutput(/fanning out/, 60_000);

  for (let index = 0; index < USERS; index++) {
    const userId = FIRST_USER + index;
    clients.push({
      userId,
      token: await mintToken(userId),
      conversationId: '',
      gateway: gatewayOf(index),
      ws: null,
      connected: false,
      cursor: null,
      seen: new Map(),
      pending: new Map(),
      acked: new Map(),
      closes: [],
      errors: [],
      retries: [],
      sent: 0,
    });
  }
}, 200_000);
afterAll(async () => {
  stopping = true;
  for (const client of clients) client.ws?.terminate();
  await stopAllRoles();
  await pool?.end();
});

describe('draining a gateway on SIGTERM', () => {
  it('turns /ready 503, then moves its 750 sockets to the other gateway over the window with 1012, losing and repeating nothing', async () => {
    await inBatches(clients, 50, async (client) => {
      connect(client, client.gateway);
      await clientsUntil(`user ${client.userId} connected`, () => client.connected);
    });
    // One conversation per pair, started once both sockets are live: each receives every event from seq 1.
    const pairs = Array.from({ length: USERS / 2 }, (_, i) => [clients[2 * i]!, clients[2 * i + 1]!] as const);
    await inBatches(pairs, 10, async ([a, b]) => {
      const created = await api(httpUrl(1 - DRAINED), 'POST', '/api/v1/chat/conversations', { token: a.token, body: { user_id: b.userId } });
      expect(created.status).toBe(201);
      a.conversationId = b.conversationId = (created.body['data'] as { id: string }).id;
    });
    await clientsUntil('every client received its conversation_created', () => clients.every((client) => client.seen.has(1)));

    const stopTraffic = startTraffic();
    const acked = () => clients.reduce((sum, client) => sum + client.acked.size, 0);
    await clientsUntil('messages flowing', () => acked() >= 100);

    const drained = clients.filter((client) => client.gateway === DRAINED);
    const drainedSet = new Set(drained);
    const readiness = watchReadiness();
    await waitUntil('/ready polled', () => Promise.resolve(readiness.statuses.length > 0), { intervalMs: 20 });
    expect(readiness.statuses[0]).toBe(200);
    const ackedBefore = acked();
    gateways[DRAINED]!.kill('SIGTERM');

    await clientsUntil('a first socket closed', () => drained.some((client) => client.closes.length > 0));
    // Readiness turned first, and a load balancer's delay passed before the first close, which says 1012.
    const first503 = readiness.first503();
    const firstClose = Math.min(...drained.flatMap((client) => client.closes.map((close) => close.at)));
    expect(first503).toBeDefined();
    expect(firstClose - first503!).toBeGreaterThan(READY_DELAY_MS / 2);
    expect(drained.flatMap((client) => client.closes).map((close) => close.code)).toContain(1012);
    // No new connection: the listener is closed (or an upgrade on a kept-alive connection gets 503).
    expect(await tryConnect(DRAINED, clients[0]!.token)).toMatch(/ECONNREFUSED|503/);
    await clientsUntil('every drained client back on the other gateway', () =>
      drained.every((client) => client.closes.length > 0 && client.connected && client.gateway !== DRAINED),
    );
    const ackedDuringDrain = acked() - ackedBefore;
    expect(await gateways[DRAINED]!.exited).toBe(0);
    readiness.stop();
    stopTraffic();

    // Every drained socket closed once, with 1012, the closes spread over the window.
    const closes = drained.flatMap((client) => client.closes).sort((a, b) => a.at - b.at);
    expect(closes).toHaveLength(drained.length);
    expect(new Set(closes.map((close) => close.code))).toEqual(new Set([1012]));
    expect(closes.every((close) => close.gateway === DRAINED)).toBe(true);
    const lastClose = closes.at(-1)!.at;
    expect(lastClose - firstClose).toBeGreaterThan(DRAIN_WINDOW_MS * 0.6);
    // Not a burst at either end: the middle 80% of the closes take up a good part of the window too.
    const percentile = (p: number) => closes[Math.floor((closes.length - 1) * p)]!.at;
    expect(percentile(0.9) - percentile(0.1)).toBeGreaterThan(DRAIN_WINDOW_MS * 0.4);
    const stayed = clients.filter((client) => !drainedSet.has(client));
    expect(stayed.length + drained.length).toBe(USERS);
    expect(stayed.every((client) => client.closes.length === 0)).toBe(true);
    expect(ackedDuringDrain).toBeGreaterThan(0);

    // What was sent and not acked (refused while draining, or cut by the close) is resent on the new socket.
    await clientsUntil('every send acked', () => clients.every((client) => client.pending.size === 0));
    // The barrier: a last message per conversation; once both sides have its seq, nothing of before is on its way.
    const last = new Map<string, number>();
    await inBatches(pairs, 50, async ([a]) => {
      const clientMsgId = `u${a.userId}-barrier`;
      a.pending.set(clientMsgId, 'barrier');
      sendMessage(a, clientMsgId, 'barrier');
      await clientsUntil('barrier acked', () => a.acked.has(clientMsgId));
      last.set(a.conversationId, a.acked.get(clientMsgId)!.seq);
    });
    await clientsUntil('every client received its barrier', () => clients.every((client) => client.seen.has(last.get(client.conversationId)!)));

    expect(clients.flatMap((client) => client.errors)).toEqual([]);
    // A connection may fail under load and be retried; none may be refused for the client's own fault.
    const retries = clients.flatMap((client) => client.retries);
    expect(retries.filter((retry) => /server response: 4\d\d/.test(retry.failure))).toEqual([]);
    await inBatches(pairs, 20, async ([a, b]) => {
      const events = await readStream(pool, a.conversationId);
      expect(events.length).toBe(last.get(a.conversationId));
      const everySeqOnce = new Map(events.map((event) => [event.version, 1]));
      for (const client of [a, b]) expect(client.seen).toEqual(everySeqOnce);
      // Every ack names a message in the log, and every message in the log was acked (once: by client_msg_id).
      const logged = events.filter((event) => event.type === 'MessageSent').map((event) => event.data['message_id'] as string);
      const ackedIds = [...a.acked.values(), ...b.acked.values()].map((message) => message.id);
      expect(new Set(ackedIds)).toEqual(new Set(logged));
      expect(ackedIds).toHaveLength(logged.length);
    });
  }, 480_000);
});
