import type { Redis } from 'ioredis';
import type { NatsConnection } from 'nats';
import type { DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conversationDecider } from '../../../src/commands/conversation/conversation.js';
import { sendMessages, startConversation, type CommandDeps } from '../../../src/commands/conversation/conversation-commands.js';
import { handleCommand } from '../../../src/commands/handle-command.js';
import { usersWithOpenSockets } from '../../../src/notifier/open-sockets.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { createRedis } from '../../../src/shared/redis.js';
import { getFreePort } from '../../../stack/free-port.js';
import { gatewayEnv, mintToken, openSocket, type TestSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix, testStreamName } from '../../support/infra.js';
import { connectTestNats, consumerAckedAll, storedCount, waitForStoredCount } from '../../support/jetstream.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * Notifications to Matcha (API.md), through the real roles: relay, gateway and notifier as processes; the
 * test sends with the write side's commands and listens on the Redis channel as Matcha's notify service
 * does. "Nothing more" is settled by a barrier: a later message to an offline user, whose notification
 * comes after every earlier message's, since the notifier handles the stream in order.
 */

type Heard = { readonly channel: string; readonly text: string };

let env: Record<string, string>;
let prefix: string;
let channel: string;
let pool: DatabasePool;
let deps: CommandDeps;
let redis: Redis;
let listener: Redis;
let operator: NatsConnection;
let gatewayPort: number;
let notifier: RoleProcess;
const heard: Heard[] = [];
const sockets: TestSocket[] = [];
let nextUser = 7_000;

const newUser = (): number => nextUser++;
const onChannel = (name: string): string[] => heard.filter((entry) => entry.channel === name).map((entry) => entry.text);
const notificationsOf = (messageId: string, name = channel): string[] =>
  onChannel(name).filter((text) => (JSON.parse(text) as { message_id: string }).message_id === messageId);

async function converse(sender: number, recipient: number): Promise<string> {
  return (await startConversation(deps, { initiatorId: sender, otherUserId: recipient })).conversationId;
}

/** Sends the messages in one transaction; returns their ids in order. */
async function send(conversationId: string, senderId: number, count = 1): Promise<string[]> {
  const inputs = Array.from({ length: count }, (_, index) => ({ conversationId, senderId, content: `message ${index}` }));
  const settled = await sendMessages(deps, inputs);
  return settled.map((result) => {
    if (result.status === 'rejected') throw result.reason;
    return result.value.id;
  });
}

/** The JSON Matcha's notify service gets, byte for byte. */
const expectedJson = (to: number, conversationId: string, messageId: string, sender: number): string =>
  `{"to_user_id":${to},"notif_type":"3","message":"Vous avez reçu un nouveau message",` +
  `"conversation_id":"${conversationId}","message_id":"${messageId}","sender_id":${sender}}`;

/** A message to an offline user, sent now; resolves once its notification was heard on `name`. */
async function barrier(name = channel): Promise<void> {
  const sender = newUser();
  const [id] = await send(await converse(sender, newUser()), sender);
  await waitUntil('the barrier\'s notification', () => Promise.resolve(notificationsOf(id!, name).length > 0), { timeoutMs: 60_000, intervalMs: 20 });
}

function notifierEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return { ...env, NOTIFICATIONS_CHANNEL: channel, NOTIFIER_ACK_WAIT_MS: '1000', ...overrides };
}

async function startNotifier(options: { env?: Record<string, string>; preload?: string[] } = {}): Promise<RoleProcess> {
  const role = await spawnRole({
    name: 'notifier',
    entry: 'src/notifier/main.ts',
    env: notifierEnv(options.env),
    ...(options.preload && { preload: options.preload }),
  });
  // The durable starts at the stream's end when first created: what is appended before is not notified.
  await role.waitForOutput(/"msg":"notifying"/, 90_000);
  return role;
}

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  prefix = testPrefix();
  channel = `${prefix}-notifications`;
  env = gatewayEnv({ databaseUrl, prefix });
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 4 });
  deps = { pool, clock: () => new Date(), newId: monotonicFactory() };
  redis = createRedis(env['REDIS_URL']!);
  listener = redis.duplicate();
  listener.on('pmessage', (_pattern: string, name: string, text: string) => heard.push({ channel: name, text }));
  listener.on('message', (name: string, text: string) => heard.push({ channel: name, text }));
  // Every channel, so that a notification on a wrong one is caught too; the empty name, which no pattern matches.
  await listener.psubscribe('*');
  await listener.subscribe('');
  operator = await connectTestNats(env['NATS_URL']!);
  gatewayPort = await getFreePort();
  const relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
  const gateway = await spawnRole({ name: 'gateway', entry: 'src/gateway/main.ts', env: { ...env, PORT: String(gatewayPort) } });
  await relay.waitForOutput(/leadership acquired/, 90_000);
  await gateway.waitForOutput(/gateway listening/, 90_000);
  notifier = await startNotifier();
}, 240_000);

afterAll(async () => {
  for (const socket of sockets) socket.ws.terminate();
  await stopAllRoles();
  listener?.disconnect();
  redis?.disconnect();
  await operator?.close();
  await pool?.end();
});

describe('the notifier', () => {
  it('notifies each message to an offline recipient once, with the contract\'s JSON, on the configured channel', async () => {
    const [alice, bob] = [newUser(), newUser()];
    const conversationId = await converse(alice, bob);
    const fromAlice = await send(conversationId, alice, 3);
    const fromBob = await send(conversationId, bob);
    const all = [...fromAlice, ...fromBob];
    await waitUntil('every message notified', () => Promise.resolve(all.every((id) => notificationsOf(id).length > 0)), { timeoutMs: 60_000 });
    await barrier();
    for (const id of fromAlice) expect(notificationsOf(id)).toEqual([expectedJson(bob, conversationId, id, alice)]);
    expect(notificationsOf(fromBob[0]!)).toEqual([expectedJson(alice, conversationId, fromBob[0]!, bob)]);
    // Nothing on any other channel.
    expect(heard.filter((entry) => entry.channel !== channel && all.some((id) => entry.text.includes(id)))).toEqual([]);
  });

  it('does not notify a recipient with an open socket on a gateway, and does once it is closed', async () => {
    const [alice, bob] = [newUser(), newUser()];
    const conversationId = await converse(alice, bob);
    const socket = await openSocket(`ws://127.0.0.1:${gatewayPort}/api/v1/chat/ws`, { token: await mintToken(bob) });
    sockets.push(socket);
    await socket.waitFor((frame) => frame.type === 'connected');
    const [whileOnline] = await send(conversationId, alice);
    await barrier();
    expect(notificationsOf(whileOnline!)).toEqual([]);

    socket.ws.close();
    await waitUntil('the socket\'s lease to be released', async () => (await usersWithOpenSockets(redis, env['REDIS_KEY_PREFIX']!, [bob], new Date())).size === 0);
    const [afterClose] = await send(conversationId, alice);
    await waitUntil('the notification once offline', () => Promise.resolve(notificationsOf(afterClose!).length === 1));
  });

  it('notifies nothing from a replay of the log', async () => {
    const before = heard.length;
    const replay = await spawnRole({ name: 'replay', entry: 'src/replay/main.ts', env, args: ['--projection', 'all'] });
    expect(await replay.exited, replay.output()).toBe(0);
    await barrier();
    // The barrier's own notification is all that was heard since.
    expect(heard.slice(before).filter((entry) => entry.channel === channel)).toHaveLength(1);
  });

  it('does not notify a message of a conversation blocked by the time it is handled, and does after the unblock', async () => {
    const [alice, bob] = [newUser(), newUser()];
    const conversationId = await converse(alice, bob);
    // Held back, so that the block is certain to be in force when the notifier handles the message.
    notifier.kill('SIGSTOP');
    let beforeBlock: string | undefined;
    try {
      [beforeBlock] = await send(conversationId, alice);
      await handleCommand(pool, conversationDecider, conversationId, { type: 'BlockConversation', userId: bob, now: new Date() });
    } finally {
      notifier.kill('SIGCONT');
    }
    await barrier();
    expect(notificationsOf(beforeBlock!)).toEqual([]);

    await handleCommand(pool, conversationDecider, conversationId, { type: 'UnblockConversation', userId: bob, now: new Date() });
    const [afterUnblock] = await send(conversationId, alice);
    await waitUntil('the notification after the unblock', () => Promise.resolve(notificationsOf(afterUnblock!).length === 1));
  });

  it('notifies each message once across a SIGKILL between publish and ack and a restart', async () => {
    await notifier.stop();
    notifier = await startNotifier({ env: { HANG_AFTER_PUBLISHES: '7' }, preload: ['test/support/hang-after-publishes.mjs'] });
    const pairs = [0, 1, 2].map(() => [newUser(), newUser()] as const);
    const sent: { id: string; conversationId: string; sender: number; recipient: number }[] = [];
    for (const [sender, recipient] of pairs) {
      const conversationId = await converse(sender, recipient);
      for (const id of await send(conversationId, sender, 10)) sent.push({ id, conversationId, sender, recipient });
    }
    await notifier.waitForOutput(/hanging after publishes/, 60_000);
    notifier.kill('SIGKILL');
    await notifier.exited;
    // Published before the kill, none of their events acked: each comes back to the next notifier.
    await waitUntil('the notifications published before the kill', () => Promise.resolve(sent.filter(({ id }) => notificationsOf(id).length > 0).length >= 7));

    notifier = await startNotifier();
    await waitUntil('every message notified', () => Promise.resolve(sent.every(({ id }) => notificationsOf(id).length > 0)), { timeoutMs: 60_000 });
    await barrier();
    for (const { id, conversationId, sender, recipient } of sent) {
      expect(notificationsOf(id)).toEqual([expectedJson(recipient, conversationId, id, sender)]);
    }
  });

  it('does not notify the history when a notifier starts for the first time', async () => {
    // Its own durable, channel and keys: only the deliver policy keeps it from what the stream holds.
    const late = `${prefix}-late`;
    await startNotifier({ env: { NOTIFIER_DURABLE: 'late', NOTIFICATIONS_CHANNEL: late, REDIS_KEY_PREFIX: `${prefix}late:` } });
    expect(await storedCount(operator, testStreamName(prefix))).toBeGreaterThan(50);
    await barrier(late);
    expect(onChannel(late)).toHaveLength(1);
  });

  it('publishes nothing when the channel name is empty, and acks the messages all the same', async () => {
    await stopAllRoles();
    const relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
    await relay.waitForOutput(/leadership acquired/, 90_000);
    await startNotifier({ env: { NOTIFIER_DURABLE: 'off', NOTIFICATIONS_CHANNEL: '' } });
    const stream = testStreamName(prefix);
    const before = await storedCount(operator, stream);
    const sender = newUser();
    const [id] = await send(await converse(sender, newUser()), sender);
    await waitForStoredCount(operator, stream, before + 2);
    await waitUntil('the notifier to ack everything', () => consumerAckedAll(operator, stream, 'off'));
    expect(heard.filter((entry) => entry.text.includes(id!))).toEqual([]);
  });
});
