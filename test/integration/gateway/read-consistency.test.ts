import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WebSocket } from 'ws';
import { api, mintToken, openSocket, startTestGateway, type ApiResponse, type Frame, type TestGateway, type TestSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix, testRoleEnv } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';

/**
 * The consistency contract (API.md, "Consistency") with the relay, the projector and the fan-out as real
 * processes: a GET reflects every change acknowledged before it, by anyone, and every event already sent to
 * the caller as a frame; when the read tables cannot catch up in time, 503 `read_model_behind`, never stale
 * data. The projector batches for up to PROJECTOR_BATCH_WAIT_MS while the fan-out sends at once, so without
 * the wait these reads would race the projection and lose often.
 */

type Conversation = { id: string; last_message_at: string | null; last_message_content: string | null; unread_count: number };
type Message = { id: string; sender_id: number; seq: number; read_at: string | null; msg: string };

let gateway: TestGateway;
/** The same database, with a short consistency bound: the projector-stopped test. */
let impatient: TestGateway;
let env: Record<string, string>;
let projector: RoleProcess;
const sockets: TestSocket[] = [];
const tokens = new Map<number, string>();
const IMPATIENT_TIMEOUT_MS = 300;

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  env = { ...testRoleEnv({ databaseUrl, prefix }), OPS_PORT: '0' };
  const relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
  projector = await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env });
  const fanout = await spawnRole({ name: 'fanout', entry: 'src/fanout/main.ts', env });
  const gatewayEnv = { RATE_LIMIT_MESSAGES_PER_MINUTE: '100000' };
  gateway = await startTestGateway({ databaseUrl, prefix, env: gatewayEnv });
  impatient = await startTestGateway({
    databaseUrl,
    prefix,
    env: { ...gatewayEnv, READ_CONSISTENCY_TIMEOUT_MS: String(IMPATIENT_TIMEOUT_MS) },
  });
  await relay.waitForOutput(/leadership acquired/);
  await projector.waitForOutput(/projecting/);
  // The fan-out's durable starts at the stream's end when first created: nothing may be appended before.
  await fanout.waitForOutput(/fanning out/);
}, 120_000);
afterAll(async () => {
  for (const socket of sockets) socket.ws.terminate();
  await Promise.all([gateway?.close(), impatient?.close()]);
  await stopAllRoles();
});

async function tokenOf(userId: number): Promise<string> {
  const known = tokens.get(userId);
  if (known) return known;
  const token = await mintToken(userId);
  tokens.set(userId, token);
  return token;
}

async function call(userId: number, method: string, path: string, body?: unknown, on: TestGateway = gateway): Promise<ApiResponse> {
  return api(on.url, method, `/api/v1/chat${path}`, { token: await tokenOf(userId), ...(body === undefined ? {} : { body }) });
}

function dataOf<T>(response: ApiResponse, what: string): T {
  if (response.status !== 200 && response.status !== 201) throw new Error(`${what}: ${response.status} ${JSON.stringify(response.body)}`);
  return response.body['data'] as T;
}

async function conversationBetween(a: number, b: number): Promise<string> {
  return dataOf<{ id: string }>(await call(a, 'POST', '/conversations', { user_id: b }), 'start').id;
}

async function sendRest(senderId: number, conversationId: string, message: string): Promise<Message> {
  return dataOf<Message>(await call(senderId, 'POST', '/messages', { conversation_id: conversationId, message }), 'send');
}

/** What a user sees right after something happened: the list, the conversation and its newest messages. */
async function readAll(userId: number, conversationId: string) {
  const [list, conversation, messages] = await Promise.all([
    call(userId, 'GET', '/conversations'),
    call(userId, 'GET', `/conversations/${conversationId}`),
    call(userId, 'GET', `/conversations/${conversationId}/messages?limit=200`),
  ]);
  return {
    list: dataOf<Conversation[]>(list, 'list'),
    conversation: dataOf<Conversation>(conversation, 'conversation'),
    messages: dataOf<Message[]>(messages, 'messages'),
  };
}

async function connect(userId: number): Promise<TestSocket> {
  const socket = await openSocket(gateway.wsUrl, { token: await tokenOf(userId) });
  sockets.push(socket);
  await socket.waitFor((frame) => frame.type === 'connected');
  return socket;
}

/** Calls `react` at once on every frame the socket receives, as a client acting on a frame would. */
function onFrame(ws: WebSocket, react: (frame: Frame) => void): void {
  ws.on('message', (data: Buffer) => react(JSON.parse(data.toString('utf8')) as Frame));
}

/**
 * Steady traffic from other users while a test reads: pairs of users sending over REST, each sender one
 * request at a time. Resolves the count sent when stopped.
 */
async function backgroundTraffic(firstUserId: number, pairs: number): Promise<{ stop(): Promise<number> }> {
  const conversations = await Promise.all(
    Array.from({ length: pairs }, (_, i) => conversationBetween(firstUserId + 2 * i, firstUserId + 2 * i + 1)),
  );
  let running = true;
  let sent = 0;
  const senders = conversations.flatMap((conversationId, i) =>
    [firstUserId + 2 * i, firstUserId + 2 * i + 1].map(async (sender) => {
      while (running) {
        await sendRest(sender, conversationId, `background ${sent}`);
        sent++;
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    }),
  );
  return {
    async stop() {
      running = false;
      await Promise.all(senders);
      return sent;
    },
  };
}

/** The place of `conversationId` in `list` is the new order: nothing with older activity before it. */
function orderProblem(list: readonly Conversation[], conversationId: string, at: number): string | null {
  const index = list.findIndex((conversation) => conversation.id === conversationId);
  if (index < 0) return 'missing from the list';
  const entry = list[index]!;
  if (entry.last_message_at === null || Date.parse(entry.last_message_at) < at) return `list shows last_message_at ${entry.last_message_at}`;
  const older = list.slice(0, index).find((conversation) => Date.parse(conversation.last_message_at ?? '') < at);
  return older ? `listed after ${older.id}, whose last activity is older` : null;
}

describe('reads right after a frame or an acknowledged call, under steady traffic', () => {
  it('shows the recipient reacting to each new_message the message, the new unread_count and the new order', async () => {
    const recipient = 1_000;
    const senders = [1_001, 1_002, 1_003];
    const perSender = 80;
    const conversations = await Promise.all(senders.map((sender) => conversationBetween(sender, recipient)));
    const socket = await connect(recipient);
    const background = await backgroundTraffic(5_000, 3);

    const problems: string[] = [];
    const reactions: Promise<void>[] = [];
    const receivedIn = new Map<string, number>();
    onFrame(socket.ws, (frame) => {
      if (frame.type !== 'new_message') return;
      const conversationId = frame['conversation_id'] as string;
      const data = frame['data'] as { id: string; sender_id: number; timestamp: string };
      // The recipient never reads: its unread count is at least the messages it got frames for.
      const received = (receivedIn.get(conversationId) ?? 0) + 1;
      receivedIn.set(conversationId, received);
      const at = Date.parse(data.timestamp);
      reactions.push(
        readAll(recipient, conversationId).then(({ list, conversation, messages }) => {
          const seen = `message ${frame['seq'] as number} of ${conversationId}`;
          if (!messages.some((message) => message.id === data.id)) problems.push(`${seen}: not in GET messages`);
          if (conversation.unread_count < received) problems.push(`${seen}: unread_count ${conversation.unread_count} < ${received}`);
          if (Date.parse(conversation.last_message_at ?? '') < at) problems.push(`${seen}: conversation shows an older last message`);
          const listed = list.find((entry) => entry.id === conversationId);
          if (listed && listed.unread_count < received) problems.push(`${seen}: list unread_count ${listed.unread_count} < ${received}`);
          const order = orderProblem(list, conversationId, at);
          if (order) problems.push(`${seen}: ${order}`);
        }),
      );
    });

    // Each sender keeps sending into its conversation while the recipient reads it: no waiting for the reads.
    await Promise.all(
      senders.map(async (sender, index) => {
        const ws = await connect(sender);
        for (let i = 0; i < perSender; i++) {
          const ack = await ws.request({ type: 'send_message', conversation_id: conversations[index]!, content: `to the recipient ${i}` });
          expect(ack.type).toBe('ack');
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      }),
    );
    await socket.waitForCount((frame) => frame.type === 'new_message', senders.length * perSender, 30_000);
    const sentMeanwhile = await background.stop();
    await Promise.all(reactions);

    expect(reactions).toHaveLength(senders.length * perSender);
    expect(problems).toEqual([]);
    expect(sentMeanwhile).toBeGreaterThan(0);
  }, 180_000);

  it('shows the sender reacting to each messages_read the messages with read_at set', async () => {
    const pairs = [
      [1_100, 1_101],
      [1_102, 1_103],
    ] as const;
    const rounds = 100;
    const background = await backgroundTraffic(5_100, 3);
    const problems: string[] = [];

    await Promise.all(
      pairs.map(async ([sender, reader]) => {
        const conversationId = await conversationBetween(sender, reader);
        const socket = await connect(sender);
        const reactions: Promise<void>[] = [];
        let wake: (() => void) | undefined;
        onFrame(socket.ws, (frame) => {
          if (frame.type !== 'messages_read' || frame['conversation_id'] !== conversationId) return;
          const seq = frame['seq'] as number;
          reactions.push(
            call(sender, 'GET', `/conversations/${conversationId}/messages?limit=500`).then((response) => {
              // Every message of the sender before the read event was read by it.
              const unread = dataOf<Message[]>(response, 'messages').filter(
                (message) => message.sender_id === sender && message.seq < seq && message.read_at === null,
              );
              if (unread.length > 0) problems.push(`read event ${seq} of ${conversationId}: seq ${unread.map((m) => m.seq).join(',')} still unread`);
            }),
          );
          wake?.();
        });
        for (let round = 1; round <= rounds; round++) {
          await sendRest(sender, conversationId, `read me ${round}`);
          const marked = await call(reader, 'PUT', `/conversations/${conversationId}/read`);
          expect(marked.body['up_to_seq']).not.toBeNull();
          // The next round's send lands in the same conversation while this round's reaction reads it.
          while (reactions.length < round) await new Promise<void>((resolve) => (wake = resolve));
        }
        await Promise.all(reactions);
        expect(reactions).toHaveLength(rounds);
      }),
    );
    expect(await background.stop()).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  }, 180_000);

  it('shows a REST reader what another user\'s acknowledged REST call changed, at once', async () => {
    const reader = 1_200;
    const [b, c] = [1_201, 1_202];
    const withB = await conversationBetween(reader, b);
    const withC = await conversationBetween(c, reader);
    const background = await backgroundTraffic(5_200, 3);
    const unread = new Map([[withB, 0], [withC, 0]]);
    const problems: string[] = [];

    for (let i = 0; i < 200; i++) {
      const [sender, conversationId] = i % 3 === 2 ? [c, withC] : [b, withB];
      const sent = await sendRest(sender, conversationId, `rest ${i}`);
      unread.set(conversationId, unread.get(conversationId)! + 1);
      const { list, conversation, messages } = await readAll(reader, conversationId);
      const seen = `send ${i} (seq ${sent.seq})`;
      if (messages[0]?.id !== sent.id) problems.push(`${seen}: newest message is ${messages[0]?.seq}`);
      if (conversation.unread_count !== unread.get(conversationId)) problems.push(`${seen}: unread_count ${conversation.unread_count}`);
      if (conversation.last_message_content !== `rest ${i}`) problems.push(`${seen}: last_message_content ${conversation.last_message_content}`);
      if (list[0]?.id !== conversationId) problems.push(`${seen}: not first in the list`);
      if (list[0]?.unread_count !== unread.get(conversationId)) problems.push(`${seen}: list unread_count ${list[0]?.unread_count}`);
    }
    expect(await background.stop()).toBeGreaterThan(0);
    expect(problems).toEqual([]);
  }, 180_000);
});

describe('when the read tables cannot catch up', () => {
  it('answers 503 read_model_behind with Retry-After after waiting its bound, and the data once the projector runs again', async () => {
    const [a, b] = [1_300, 1_301];
    const conversationId = await conversationBetween(a, b);
    const untouched = await conversationBetween(a, 1_302);
    await sendRest(1_302, untouched, 'projected before the stop');
    // Reads of both are current before the projector stops.
    expect((await call(a, 'GET', `/conversations/${untouched}`, undefined, impatient)).status).toBe(200);

    await projector.stop();
    const sent = await sendRest(b, conversationId, 'while the projector is down');

    for (const path of [`/conversations/${conversationId}`, `/conversations/${conversationId}/messages`, '/conversations']) {
      const started = performance.now();
      const response = await call(a, 'GET', path, undefined, impatient);
      const waited = performance.now() - started;
      expect(response.status, path).toBe(503);
      expect(response.body).toMatchObject({ success: false, code: 'read_model_behind' });
      expect(typeof response.body['error']).toBe('string');
      expect(response.headers.get('retry-after')).toBe('1');
      expect(waited).toBeGreaterThanOrEqual(IMPATIENT_TIMEOUT_MS - 5);
    }
    // Only what is behind is held back: the caller's other conversation still reads, and so does a stranger's 404.
    expect((await call(a, 'GET', `/conversations/${untouched}`, undefined, impatient)).status).toBe(200);
    expect((await call(1_399, 'GET', `/conversations/${conversationId}`, undefined, impatient)).status).toBe(404);

    projector = await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env });
    await projector.waitForOutput(/projecting/);
    const { list, conversation, messages } = await readAll(a, conversationId);
    expect(messages[0]?.id).toBe(sent.id);
    expect(conversation).toMatchObject({ last_message_content: 'while the projector is down', unread_count: 1 });
    expect(list[0]?.id).toBe(conversationId);
  }, 120_000);
});
