import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { ChatClient, type ChatClientOptions, type ChatEvents, type ConnectionState, type NewMessageFrame } from '../../../client/src/index.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { gatewayEnv, mintToken } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * The client (client/src) against the real roles as processes: relay, projector, fan-out and two gateways.
 * Clients reach gateway 1 (which is killed and restarted on its port); gateway 2 takes REST while it is down.
 * Node 20 has no global WebSocket: the clients get `ws`'s.
 */

const A = 301;
const B = 302;
let env: Record<string, string>;
const ports: number[] = [];
const gateways: RoleProcess[] = [];
const clients: ChatClient[] = [];

const httpUrl = (index: number): string => `http://127.0.0.1:${ports[index]}`;

async function startGateway(index: number): Promise<RoleProcess> {
  const role = await spawnRole({ name: `gateway-${index + 1}`, entry: 'src/gateway/main.ts', env: { ...env, PORT: String(ports[index]) } });
  gateways[index] = role;
  await role.waitForOutput(/gateway listening/, 90_000);
  return role;
}

type Recorded = { readonly client: ChatClient; readonly events: { [K in keyof ChatEvents]: ChatEvents[K][] }; tokensIssued: number };

/** A client of `userId` on gateway `gateway` that records every event it emits. */
function newClient(userId: number, options: Partial<ChatClientOptions> & { readonly gateway?: number; readonly tokenSeconds?: number } = {}): Recorded {
  const recorded = { tokensIssued: 0 } as Recorded;
  const client = new ChatClient({
    baseUrl: httpUrl(options.gateway ?? 0),
    getToken: () => {
      recorded.tokensIssued++;
      return mintToken(userId, { expiresIn: options.tokenSeconds ?? 3_600 });
    },
    WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
    backoff: { initialMs: 100, maxMs: 1_000 },
    ...options,
  });
  const names: (keyof ChatEvents)[] = [
    'state', 'connected', 'new_message', 'messages_read', 'conversation_created', 'conversation_blocked', 'conversation_removed',
    'conversation_unblocked', 'conversation_restored', 'message_deleted', 'typing', 'presence', 'resync_required', 'error',
  ];
  const events = {} as Record<keyof ChatEvents, unknown[]>;
  for (const name of names) {
    events[name] = [];
    client.on(name, (payload) => events[name].push(payload));
  }
  Object.assign(recorded, { client, events });
  clients.push(client);
  return recorded;
}

/** `ws`'s WebSocket, recording every text the client writes. */
function recordingWebSocket(written: string[]): typeof globalThis.WebSocket {
  return class extends WebSocket {
    constructor(url: string) {
      super(url);
      const send = this.send.bind(this);
      this.send = ((data: string) => {
        written.push(data);
        send(data);
      }) as typeof this.send;
    }
  } as unknown as typeof globalThis.WebSocket;
}

const until = (what: string, condition: () => boolean, timeoutMs = 60_000) => waitUntil(what, () => Promise.resolve(condition()), { timeoutMs, intervalMs: 25 });

const opened = (recorded: Recorded) => until('the client is open', () => recorded.client.state === 'open');

const messagesOf = (recorded: Recorded, conversationId: string): NewMessageFrame[] =>
  recorded.events.new_message.filter((frame) => frame.conversation_id === conversationId);
const texts = (recorded: Recorded, conversationId: string): (string | null)[] => messagesOf(recorded, conversationId).map((frame) => frame.data.message);

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  env = {
    ...gatewayEnv({ databaseUrl, prefix: testPrefix() }),
    FANOUT_ACK_WAIT_MS: '1000',
    RATE_LIMIT_MESSAGES_PER_MINUTE: '5000',
    // Presence goes offline quickly, and a token expires at its exp plus one second.
    PRESENCE_OFFLINE_GRACE_MS: '300',
    PRESENCE_SWEEP_INTERVAL_MS: '100',
    JWT_LEEWAY_SECONDS: '1',
  };
  ports.push(...(await getFreePorts(2)));
  const relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
  const projector = await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env });
  const fanout = await spawnRole({ name: 'fanout', entry: 'src/fanout/main.ts', env });
  await Promise.all([startGateway(0), startGateway(1)]);
  await relay.waitForOutput(/leadership acquired/);
  await projector.waitForOutput(/projecting/);
  await fanout.waitForOutput(/fanning out/);
}, 240_000);

afterAll(async () => {
  for (const client of clients) client.close();
  await stopAllRoles();
});

describe('the client against the real stack', () => {
  let a: Recorded;
  let b: Recorded;
  let conversationId: string;

  it('two clients chat: a conversation started over REST, messages over the socket, typing and reads as events', async () => {
    a = newClient(A);
    b = newClient(B);
    a.client.connect();
    b.client.connect();
    await Promise.all([opened(a), opened(b)]);
    expect(a.events.connected).toEqual([{ user_id: A }]);

    const started = await a.client.rest.startConversation(B);
    expect(started.created).toBe(true);
    conversationId = started.conversation.id;
    expect(await a.client.rest.startConversation(B)).toMatchObject({ created: false, conversation: { id: conversationId } });
    await until('both see conversation_created', () => a.events.conversation_created.length === 1 && b.events.conversation_created.length === 1);

    const sent = await a.client.sendMessage(conversationId, 'hello B');
    expect(sent).toMatchObject({ conv_id: conversationId, sender_id: A, msg: 'hello B', seq: 2 });
    const reply = await b.client.sendMessage(conversationId, 'hello A', { clientMsgId: 'b-reply-1' });
    expect(reply.client_msg_id).toBe('b-reply-1');
    await until('both have both messages', () => messagesOf(a, conversationId).length === 2 && messagesOf(b, conversationId).length === 2);
    expect(texts(b, conversationId)).toEqual(['hello B', 'hello A']);

    await a.client.typing(conversationId, true);
    await until('B sees A typing', () => b.events.typing.some((frame) => frame.data.user_id === A && frame.data.is_typing));
    await b.client.markRead(conversationId);
    await until('A sees the read', () => a.events.messages_read.some((frame) => frame.data.reader_id === B));

    const page = await b.client.rest.listMessages(conversationId, { limit: 10 });
    expect(page.map((message) => message.msg)).toEqual(['hello A', 'hello B']);
    expect(page[1]?.read_at).not.toBeNull();
    expect((await b.client.rest.listConversations()).map((conversation) => conversation.id)).toEqual([conversationId]);
  });

  it('a send retried under the same client_msg_id is stored once and answers the same Message', async () => {
    const first = await a.client.sendMessage(conversationId, 'once', { clientMsgId: 'a-once' });
    const again = await a.client.sendMessage(conversationId, 'once', { clientMsgId: 'a-once' });
    expect(again).toMatchObject({ id: first.id, client_msg_id: 'a-once' });
    const rest = await a.client.rest.sendMessage(conversationId, 'once', 'a-once');
    expect(rest).toMatchObject({ created: false, message: { id: first.id } });
    const page = await a.client.rest.listMessages(conversationId);
    expect(page.filter((message) => message.client_msg_id === 'a-once')).toHaveLength(1);
  });

  it('REST failures are ChatErrors with the status and the code', async () => {
    await expect(a.client.rest.getConversation('01JD0000000000000000000000')).rejects.toMatchObject({ name: 'ChatError', status: 404, code: 'not_found' });
    await expect(a.client.sendMessage(conversationId, 'x'.repeat(1_001))).rejects.toMatchObject({ name: 'ChatError', code: 'too_long' });
  });

  it('a gateway killed and restarted on its port: both clients reconnect and resume, every message once, in order, and a message sent while down is delivered once', async () => {
    const rest2 = newClient(A, { gateway: 1 }).client.rest;
    const before = messagesOf(a, conversationId).length;
    const states: ConnectionState[] = [];
    b.client.on('state', (state) => states.push(state));
    const sent: string[] = [];
    for (let i = 0; i < 5; i++) {
      sent.push(`before ${i}`);
      await rest2.sendMessage(conversationId, `before ${i}`);
    }

    gateways[0]!.kill('SIGKILL');
    await gateways[0]!.exited;
    await until('both clients see the socket gone', () => a.client.state === 'reconnecting' && b.client.state === 'reconnecting');

    const whileDown = a.client.sendMessage(conversationId, 'sent while down', { clientMsgId: 'a-while-down' });
    for (let i = 0; i < 5; i++) {
      sent.push(`during ${i}`);
      await rest2.sendMessage(conversationId, `during ${i}`);
    }

    await startGateway(0);
    await Promise.all([opened(a), opened(b)]);
    const stored = await whileDown;
    expect(stored.client_msg_id).toBe('a-while-down');
    for (let i = 0; i < 5; i++) {
      sent.push(`after ${i}`);
      await rest2.sendMessage(conversationId, `after ${i}`);
    }
    await rest2.sendMessage(conversationId, 'barrier');

    for (const recorded of [a, b]) {
      await until('the barrier arrives', () => texts(recorded, conversationId).includes('barrier'));
      const frames = messagesOf(recorded, conversationId).slice(before);
      const got = frames.map((frame) => frame.data.message);
      expect(got.filter((text) => text === 'sent while down')).toHaveLength(1);
      expect(got.filter((text) => text !== 'sent while down')).toEqual([...sent, 'barrier']);
      const seqs = messagesOf(recorded, conversationId).map((frame) => frame.seq);
      expect(seqs).toEqual([...seqs].sort((x, y) => x - y));
      expect(new Set(seqs).size).toBe(seqs.length);
    }
    expect(states).toEqual(['reconnecting', 'open']);
    expect(b.events.connected).toHaveLength(2);
    expect(b.events.resync_required).toEqual([]);
    const page = await a.client.rest.listMessages(conversationId, { limit: 100 });
    expect(page.filter((message) => message.client_msg_id === 'a-while-down')).toHaveLength(1);
  }, 240_000);

  it('a gateway drained (SIGTERM) under a stream of sends: each send resolves, one cut off by the drain is written again under the client_msg_id it generated, each is stored once and arrives in order', async () => {
    const written: string[] = [];
    const sender = newClient(A, { WebSocket: recordingWebSocket(written) });
    sender.client.connect();
    await opened(sender);
    const before = messagesOf(b, conversationId).length;

    const sends: Promise<unknown>[] = [];
    const keys: string[] = [];
    let firing = true;
    let next = 0;
    const send = (): void => {
      const key = `drain ${next++}`;
      keys.push(key);
      sends.push(sender.client.sendMessage(conversationId, key));
    };
    const fire = async (): Promise<void> => {
      while (firing) {
        send();
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    };
    const fired = fire();
    await until('a few sends acked before the drain', () => messagesOf(b, conversationId).length >= before + 5);
    gateways[0]!.kill('SIGTERM');
    // A burst, so that the client has sends waiting all through the drain (one goes out as each is answered):
    // the drain then answers one `unavailable`, or closes under one, whichever moment in its window it comes.
    for (let i = 0; i < 60; i++) send();
    await gateways[0]!.exited;
    // Sends made while the gateway is away queue up; a hundred or so are enough.
    firing = false;
    await fired;
    await startGateway(0);
    await Promise.all([opened(sender), opened(a), opened(b)]);
    // Each send generated its client_msg_id, and resolves with the Message stored under it.
    const stored = (await Promise.all(sends)) as { msg: string; client_msg_id: string }[];
    expect(stored.map((message) => message.msg)).toEqual(keys);
    expect(new Set(stored.map((message) => message.client_msg_id)).size).toBe(keys.length);

    const attempts = new Map<string, number>();
    for (const text of written) {
      const frame = JSON.parse(text) as { type: string; client_msg_id?: string };
      if (frame.type === 'send_message' && frame.client_msg_id) attempts.set(frame.client_msg_id, (attempts.get(frame.client_msg_id) ?? 0) + 1);
    }
    // The drain answered `unavailable` or closed under some send: it went out more than once, same key.
    expect([...attempts.values()].some((count) => count > 1)).toBe(true);

    await b.client.sendMessage(conversationId, 'drain barrier');
    await until('the barrier reaches B', () => texts(b, conversationId).includes('drain barrier'));
    const got = texts(b, conversationId).slice(before);
    expect(got).toEqual([...keys, 'drain barrier']);
    const page = await a.client.rest.listMessages(conversationId, { limit: 1000 });
    for (const key of keys) expect(page.filter((message) => message.msg === key), key).toHaveLength(1);
    sender.client.close();
  }, 240_000);

  it('token refresh over `auth` keeps the socket past the first token\'s expiry', async () => {
    // Tokens of 8 s, refreshed 5 s before exp (every 5 s, the client's minimum): without the refresh the
    // gateway closes the socket with 4401 at exp + 1 s.
    const short = newClient(A, { tokenSeconds: 8, refreshBeforeExpiryMs: 5_000 });
    short.client.connect();
    await opened(short);
    const openedAt = Date.now();
    await until('two refreshes went through', () => short.tokensIssued >= 3, 60_000);
    await until('the first token is past its expiry and leeway', () => Date.now() - openedAt > 11_000, 30_000);
    await b.client.sendMessage(conversationId, 'after the refresh');
    await until('the message arrives on the refreshed socket', () => texts(short, conversationId).includes('after the refresh'));
    expect(short.events.connected).toHaveLength(1);
    expect(short.events.state).toEqual(['connecting', 'open']);
    expect(short.events.error).toEqual([]);
    short.client.close();
  }, 120_000);

  it('block, unblock, delete and presence arrive as events', async () => {
    const blocked = await a.client.rest.block(conversationId);
    expect(blocked.blocked_by).toBe(A);
    await until('A gets conversation_blocked', () => a.events.conversation_blocked.some((frame) => frame.conversation_id === conversationId));
    await until('B gets conversation_removed', () => b.events.conversation_removed.some((frame) => frame.conversation_id === conversationId));
    await expect(b.client.sendMessage(conversationId, 'to a blocker')).rejects.toMatchObject({ code: 'not_found' });
    await expect(a.client.sendMessage(conversationId, 'while blocking')).rejects.toMatchObject({ code: 'blocked' });

    expect((await a.client.rest.unblock(conversationId)).blocked_by).toBeNull();
    await until('A gets conversation_unblocked', () => a.events.conversation_unblocked.length === 1);
    await until('B gets conversation_restored', () => b.events.conversation_restored.length === 1);

    const doomed = await b.client.sendMessage(conversationId, 'to be deleted');
    const deleted = await b.client.rest.deleteMessage(doomed.id);
    expect(deleted).toMatchObject({ id: doomed.id, conv_id: conversationId });
    for (const recorded of [a, b]) {
      await until('message_deleted arrives', () => recorded.events.message_deleted.some((frame) => frame.data.id === doomed.id));
    }

    expect(await a.client.rest.presence([B, 999])).toEqual([{ user_id: B, online: true, last_seen_at: expect.any(String) as unknown }]);
    b.client.close();
    await until('A sees B go offline', () => a.events.presence.some((frame) => frame.data.user_id === B && !frame.data.online));
    const back = newClient(B);
    back.client.connect();
    await until('A sees B come back online', () => a.events.presence.filter((frame) => frame.data.user_id === B).at(-1)?.data.online === true);
    expect((await a.client.rest.presence([B]))[0]?.online).toBe(true);
  }, 120_000);
});
