import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectNats, deliverySubject } from '../../../src/shared/nats.js';
import { sleep } from '../../../src/shared/sleep.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { startNatsServer, type NatsServer } from '../../../stack/nats-server.js';
import { api, gatewayEnv, mintToken, openSocket, type Frame, type TestSocket } from '../../support/gateway.js';
import { createTestDatabase, natsCredentials, natsUsers, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * Core NATS drops the frames the fan-out publishes while a gateway's subscriptions are gone. A client whose
 * socket stayed open must still get each of them, once, in order, without reconnecting: the gateway replays
 * them from the log when its NATS connection comes back.
 *
 * Everything on a private nats-server (it is restarted here): relay, projector and fan-out as processes,
 * and one gateway process that reaches NATS through a TCP proxy (test/support/tcp-proxy.ts), so that its
 * connection alone can be cut, and kept cut while the rest of the pipeline goes on publishing. A (301) sends over REST; A and B (302) each hold one socket.
 */

const A = 301;
const B = 302;
let root: string;
let nats: NatsServer;
let proxy: TcpProxy;
let gateway: RoleProcess;
let httpUrl: string;
let conversationId: string;
let observer: NatsConnection | undefined;
/**
 * The ids of the new_message frames the fan-out published for B, in the order a direct subscriber (on the
 * server, not through the proxy) saw them: it shows what was published while the gateway was cut off.
 */
const published: string[] = [];
let prefix: string;
const tokens = new Map<number, string>();
const sockets = new Map<number, TestSocket>();
/** Every message A sent and had acknowledged, in the order sent (which is seq order: one sender). */
const acknowledged: { id: string; seq: number }[] = [];

/** Polls a synchronous condition (waitUntil takes an async one). */
const until = (what: string, condition: () => boolean, options?: Parameters<typeof waitUntil>[2]) =>
  waitUntil(what, () => Promise.resolve(condition()), options);

//// Sending, and what the sockets received.

/** One REST send, retried with the same client_msg_id until acknowledged (a retry never appends twice). */
async function send(text: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const answer = await api(httpUrl, 'POST', '/api/v1/chat/messages', {
      token: tokens.get(A)!,
      body: { conversation_id: conversationId, message: text, client_msg_id: text },
    }).catch(() => null);
    if (answer && (answer.status === 201 || answer.status === 200)) {
      const message = answer.body['data'] as { id: string; seq: number };
      acknowledged.push({ id: message.id, seq: message.seq });
      return;
    }
    if (attempt >= 100) throw new Error(`could not send ${text}: ${JSON.stringify(answer?.body)}`);
    await sleep(100);
  }
}

/** Sends `text-1`, `text-2`, ... one after another until `stop` aborts. */
async function keepSending(text: string, stop: AbortSignal): Promise<number> {
  let count = 0;
  while (!stop.aborted) {
    await send(`${text}-${++count}`);
    await sleep(20);
  }
  return count;
}

const events = (socket: TestSocket): Frame[] =>
  socket.frames.filter((frame) => typeof frame['seq'] === 'number' && frame['conversation_id'] === conversationId);
const messageIds = (socket: TestSocket): string[] =>
  events(socket)
    .filter((frame) => frame.type === 'new_message')
    .map((frame) => (frame['data'] as { id: string }).id);

/**
 * Both sockets end up with every acknowledged message exactly once and in seq order (conversation_created
 * is seq 1), still on the socket they opened first.
 */
async function expectEveryMessageOnceInOrder(): Promise<void> {
  // Barrier: a message sent after everything else. Each socket gets its conversation's frames in seq order,
  // so a repeat or a late replay of an earlier one would come before it.
  await send(`barrier-${acknowledged.length}`);
  const ids = acknowledged.map((message) => message.id);
  for (const [user, socket] of sockets) {
    await until(`user ${user} received the barrier`, () => messageIds(socket).includes(ids.at(-1)!), {
      timeoutMs: 30_000,
    });
  }
  const lastSeq = acknowledged.at(-1)!.seq;
  for (const socket of sockets.values()) {
    expect(events(socket).map((frame) => frame['seq'])).toEqual(Array.from({ length: lastSeq }, (_, i) => i + 1));
    expect(messageIds(socket)).toEqual(ids);
    expect(socket.ws.readyState).toBe(socket.ws.OPEN);
    expect(socket.frames.filter((frame) => frame.type === 'connected')).toHaveLength(1);
    expect(socket.frames.filter((frame) => frame.type === 'resync_required')).toEqual([]);
  }
}

type RecoveryLog = { sockets: number; replayed: number; resyncRequired: number };

/** The gateway's log lines about replaying after a NATS reconnect. */
function recoveryLogs(): RecoveryLog[] {
  return gateway
    .output()
    .split('\n')
    .filter((line) => line.includes('NATS reconnected'))
    .map((line) => JSON.parse(line) as RecoveryLog);
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'matcha-nats-reconnect-'));
  const [natsPort, proxyPort, gatewayPort] = await getFreePorts(3);
  nats = await startNatsServer({ storeDir: path.join(root, 'nats'), port: natsPort!, users: natsUsers() });
  proxy = await startTcpProxy({ host: '127.0.0.1', port: natsPort! }, { port: proxyPort! });
  const databaseUrl = await createTestDatabase();
  prefix = testPrefix();
  const env = {
    ...gatewayEnv({ databaseUrl, prefix }),
    NATS_URL: nats.url,
    FANOUT_ACK_WAIT_MS: '1000',
    PROJECTOR_ACK_WAIT_MS: '1000',
    RATE_LIMIT_MESSAGES_PER_MINUTE: '100000',
  };
  const relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
  const projector = await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env });
  const fanout = await spawnRole({ name: 'fanout', entry: 'src/fanout/main.ts', env });
  gateway = await spawnRole({
    name: 'gateway',
    entry: 'src/gateway/main.ts',
    env: { ...env, NATS_URL: `nats://127.0.0.1:${proxy.port}`, PORT: String(gatewayPort) },
  });
  await gateway.waitForOutput(/gateway listening/, 90_000);
  await relay.waitForOutput(/leadership acquired/);
  await projector.waitForOutput(/projecting/);
  // The fan-out's durable starts at the stream's end when first created: nothing may be appended before.
  await fanout.waitForOutput(/fanning out/);
  httpUrl = `http://127.0.0.1:${gatewayPort}`;
  observer = await connectNats({ url: nats.url, name: 'observer', ...natsCredentials('operator') });
  observer.subscribe(deliverySubject(prefix, B), {
    callback: (error, message) => {
      if (error) return;
      const frame = JSON.parse(message.string()) as Frame;
      if (frame.type === 'new_message') published.push((frame['data'] as { id: string }).id);
    },
  });
  await observer.flush();
  for (const user of [A, B]) {
    tokens.set(user, await mintToken(user));
    const socket = await openSocket(`ws://127.0.0.1:${gatewayPort}/api/v1/chat/ws`, { token: tokens.get(user)! });
    await socket.waitFor((frame) => frame.type === 'connected');
    sockets.set(user, socket);
  }
  const created = await api(httpUrl, 'POST', '/api/v1/chat/conversations', { token: tokens.get(A)!, body: { user_id: B } });
  conversationId = (created.body['data'] as { id: string }).id;
  for (const socket of sockets.values()) await socket.waitFor((frame) => frame.type === 'conversation_created');
}, 180_000);

afterAll(async () => {
  for (const socket of sockets.values()) socket.ws.terminate();
  await observer?.close();
  await stopAllRoles();
  await proxy?.close();
  await nats?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

/**
 * Cuts the gateway's NATS connection (and refuses it), runs `during`, and lets it reconnect only once the
 * fan-out has published at least `count` more frames for B: frames core NATS could not bring to the gateway.
 * Returns their message ids.
 */
async function whileGatewayCutOff(during: () => Promise<void>, count: number): Promise<string[]> {
  proxy.cut({ refuse: true });
  const from = published.length;
  await during();
  await until(`the fan-out published ${count} frames while the gateway was cut off`, () => published.length >= from + count, {
    timeoutMs: 30_000,
  });
  const missed = published.slice(from);
  proxy.allow();
  return missed;
}

describe('delivery across a NATS outage, to sockets that stay open', () => {
  it('replays the frames published after nats-server restarted, while the gateway was still cut off, exactly once, in order', async () => {
    const logsBefore = recoveryLogs().length;
    const stop = new AbortController();
    const sending = keepSending('around the restart', stop.signal);
    await until('a few messages sent', () => acknowledged.length >= 10, { intervalMs: 20 });
    const missed = await whileGatewayCutOff(() => nats.restart(), 5);
    const sentBefore = acknowledged.length;
    await until('messages sent after the gateway is let back', () => acknowledged.length >= sentBefore + 5, { intervalMs: 20 });
    stop.abort();
    await sending;

    await expectEveryMessageOnceInOrder();
    for (const socket of sockets.values()) expect(messageIds(socket)).toEqual(expect.arrayContaining(missed));
    await until('the gateway replayed after reconnecting', () => recoveryLogs().length > logsBefore, { timeoutMs: 10_000 });
    const recovery = recoveryLogs().at(-1)!;
    expect(recovery).toMatchObject({ sockets: 2, resyncRequired: 0 });
    expect(recovery.replayed).toBeGreaterThanOrEqual(2 * missed.length);
  });

  it('replays the frames published while only the gateway\'s connection was cut, exactly once, in order', async () => {
    const logsBefore = recoveryLogs().length;
    const stop = new AbortController();
    const sending = keepSending('while cut off', stop.signal);
    await until('a few messages sent', () => acknowledged.length >= 3, { intervalMs: 20 });
    const missed = await whileGatewayCutOff(() => Promise.resolve(), 10);
    const sentBefore = acknowledged.length;
    await until('messages sent after the gateway is let back', () => acknowledged.length >= sentBefore + 5, { intervalMs: 20 });
    stop.abort();
    await sending;

    await expectEveryMessageOnceInOrder();
    for (const socket of sockets.values()) expect(messageIds(socket)).toEqual(expect.arrayContaining(missed));
    await until('the gateway replayed after reconnecting', () => recoveryLogs().length > logsBefore, { timeoutMs: 10_000 });
    // Both sockets missed each of those frames, and got them from the log.
    const recovery = recoveryLogs().at(-1)!;
    expect(recovery).toMatchObject({ sockets: 2, resyncRequired: 0 });
    expect(recovery.replayed).toBeGreaterThanOrEqual(2 * missed.length);
  });
});
