/**
 * A load worker: a child process of the load tool (run-load.ts) holding its share of the sockets, at
 * most `MAX_SOCKETS_PER_WORKER` (10,000). It does what the coordinator asks, one phase at
 * a time: setup (conversations over REST), connect, send (or count, when idle), close.
 */
import type { WebSocket } from 'ws';
import { countInto, forEachBounded, reasonOf, sleep } from './bounded-parallel.js';
import { encodeContentTag, nowMs } from './content-tag.js';
import { frameText } from './frame-text.js';
import { createDeliveryTracker, type DeliveryTracker, type NewMessageFrame } from './delivery-tracker.js';
import { openSocketWithRetry } from './open-socket.js';
import { paceOpenLoop } from './pace.js';
import { createReadRecorder, READ_KINDS, readPath } from './reader.js';
import { createRestClient, type RestClient } from './rest-client.js';
import { createTokenMinter } from './tokens.js';
import type { CoordinatorMessage, Gateway, SendReport, WorkerAssignment, WorkerMessage } from './worker-protocol.js';

type User = { readonly id: number; readonly token: string; readonly gateway: Gateway; socket: WebSocket | undefined };
/** `id` is whatever JSON value the server gave (a ULID string, or a number for the baseline): sent back as is. */
type Conversation = { readonly id: unknown; readonly a: User; readonly b: User };

const SETUP_ATTEMPTS = 4;
const REST_TIMEOUT_MS = 30_000;

let assignment: WorkerAssignment | undefined;
let rest: RestClient | undefined;
let tracker: DeliveryTracker | undefined;
const users: User[] = [];
const conversations: Conversation[] = [];
const disconnects: Record<string, number> = {};
let closing = false;

function reply(message: WorkerMessage): void {
  process.send?.(message);
}

process.on('message', (message: CoordinatorMessage) => {
  handle(message).catch((error: unknown) => {
    reply({ type: 'failed', error: error instanceof Error ? (error.stack ?? error.message) : String(error) });
  });
});
// The coordinator gone (killed, crashed) leaves nothing to report to.
process.on('disconnect', () => process.exit(0));

async function handle(message: CoordinatorMessage): Promise<void> {
  switch (message.type) {
    case 'setup':
      return reply({ type: 'setup-done', report: await setup(message.assignment) });
    case 'connect':
      return reply({ type: 'connect-done', report: await connect() });
    case 'send':
      return reply({ type: 'send-done', report: await send(message) });
    case 'count':
      return reply({ type: 'count-done', open: users.filter((user) => user.socket).length, disconnects: { ...disconnects } });
    case 'close':
      closing = true;
      for (const user of users) user.socket?.terminate();
      rest?.close();
      // Let the IPC channel flush nothing more, then go.
      setTimeout(() => process.exit(0), 50);
      return;
    default: {
      const unknown: never = message;
      throw new Error(`unknown message ${JSON.stringify(unknown)}`);
    }
  }
}

function required<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new Error(`${what} before setup`);
  return value;
}

async function setup(given: WorkerAssignment): Promise<{ conversations: number; created: number; failed: number; failures: Record<string, number> }> {
  assignment = given;
  tracker = createDeliveryTracker(given.runId);
  rest = createRestClient({ localAddress: given.localAddress, maxSockets: Math.max(64, given.setupConcurrency), timeoutMs: REST_TIMEOUT_MS });
  const mint = createTokenMinter(given.jwtSecret, given.tokenValiditySeconds);
  for (let pair = given.firstPair; pair < given.firstPair + given.pairs; pair++) {
    for (const index of [2 * pair, 2 * pair + 1]) {
      const gateway = given.gateways[index % given.gateways.length];
      if (!gateway) throw new Error('no gateway');
      users.push({ id: given.firstUserId + index, token: await mint(given.firstUserId + index), gateway, socket: undefined });
    }
  }
  const failures: Record<string, number> = {};
  if (given.idle) return { conversations: 0, created: 0, failed: 0, failures };

  const client = rest;
  let created = 0;
  const pairs = Array.from({ length: given.pairs }, (_, k) => [users[2 * k], users[2 * k + 1]] as const);
  await forEachBounded(pairs, given.setupConcurrency, async ([a, b]) => {
    if (!a || !b) return;
    for (let attempt = 1; ; attempt++) {
      let reason: string;
      try {
        const answer = await client.request('POST', `${a.gateway.api}/conversations`, a.token, { user_id: b.id });
        const id = (answer.body as { data?: { id?: unknown } } | null)?.data?.id;
        if ((answer.status === 201 || answer.status === 200) && id !== undefined) {
          if (answer.status === 201) created++;
          conversations.push({ id, a, b });
          return;
        }
        reason = `HTTP ${answer.status}`;
      } catch (error) {
        reason = reasonOf(error);
      }
      if (attempt >= SETUP_ATTEMPTS) {
        countInto(failures, reason);
        return;
      }
      await sleep(250 * 2 ** attempt);
    }
  });
  return { conversations: conversations.length, created, failed: given.pairs - conversations.length, failures };
}

async function connect(): Promise<{ connected: number; failed: number; retried: number; failures: Record<string, number> }> {
  const given = required(assignment, 'connect');
  const failures: Record<string, number> = {};
  let retried = 0;
  let connected = 0;
  await forEachBounded(users, given.connectConcurrency, async (user) => {
    const url = `${user.gateway.ws}${user.gateway.ws.includes('?') ? '&' : '?'}token=${encodeURIComponent(user.token)}`;
    try {
      const socket = await openSocketWithRetry(url, {
        localAddress: given.localAddress,
        timeoutMs: given.connectTimeoutMs,
        attempts: given.connectAttempts,
        onRetry: () => void retried++,
      });
      attach(user, socket);
      connected++;
    } catch (error) {
      countInto(failures, reasonOf(error));
    }
  });
  return { connected, failed: users.length - connected, retried, failures };
}

/** Routes the frames of a connected socket: acks and errors to the sender's messages, new_message to the tracker. */
function attach(user: User, socket: WebSocket): void {
  user.socket = socket;
  const track = required(tracker, 'attach');
  socket.on('message', (data) => {
    let frame: { type?: unknown; request_id?: unknown; data?: { code?: unknown } };
    try {
      frame = JSON.parse(frameText(data)) as typeof frame;
    } catch {
      return;
    }
    switch (frame.type) {
      case 'new_message':
        track.onNewMessage(user.id, frame as NewMessageFrame);
        break;
      case 'ack':
        if (typeof frame.request_id === 'number') track.onAck(frame.request_id);
        break;
      case 'error':
        if (typeof frame.request_id === 'number') track.onRejected(frame.request_id, `error frame ${String(frame.data?.code)}`);
        break;
      default:
    }
  });
  socket.on('error', () => undefined);
  socket.on('close', (code) => {
    user.socket = undefined;
    if (!closing) countInto(disconnects, String(code));
  });
}

async function send(order: Extract<CoordinatorMessage, { type: 'send' }>): Promise<SendReport> {
  const given = required(assignment, 'send');
  const track = required(tracker, 'send');
  const client = required(rest, 'send');
  const counters = new Map<number, number>();
  const restQueues = new Map<number, Promise<void>>();
  let maxSendLagMs = 0;

  const sendOne = (i: number, scheduledAt: number): void => {
    const n = conversations.length;
    const conversation =
      given.pick === 'random' ? conversations[Math.floor(Math.random() * n)] : conversations[i % n];
    if (!conversation) return;
    const senderIsA = given.pick === 'random' ? Math.random() < 0.5 : Math.floor(i / n) % 2 === 0;
    const sender = senderIsA ? conversation.a : conversation.b;
    const counter = counters.get(sender.id) ?? 0;
    counters.set(sender.id, counter + 1);
    const sentAt = nowMs();
    const content = encodeContentTag({ runId: given.runId, sender: sender.id, counter, sentAt });
    const index = track.recordSend(sender.id, counter, sentAt, scheduledAt);
    if (given.via === 'ws') {
      if (!sender.socket) return track.onRejected(index, 'socket closed');
      sender.socket.send(JSON.stringify({ type: 'send_message', request_id: index, conversation_id: conversation.id, content }));
      return;
    }
    // One request at a time per sender, as a client that waits for each answer (and as the socket path,
    // where the server handles a socket's frames in order). The wait counts in the latency: the time in
    // the content is when the send was due, not when the request left.
    const previous = restQueues.get(sender.id) ?? Promise.resolve();
    const next = previous.then(() =>
      client.request('POST', `${sender.gateway.api}/messages`, sender.token, { conversation_id: conversation.id, message: content }).then(
        (answer) => {
          if (answer.status === 201 || answer.status === 200) track.onAck(index);
          else track.onRejected(index, `HTTP ${answer.status}`);
        },
        (error: unknown) => track.onRejected(index, reasonOf(error)),
      ),
    );
    restQueues.set(sender.id, next);
  };

  const reads = createReadRecorder();
  const readsInFlight: Promise<void>[] = [];
  const readOne = (i: number): void => {
    const conversation = conversations[Math.floor(Math.random() * conversations.length)];
    if (!conversation) return;
    const reader = Math.random() < 0.5 ? conversation.a : conversation.b;
    const kind = READ_KINDS[i % READ_KINDS.length] ?? 'list';
    const issuedAt = nowMs();
    reads.sent();
    readsInFlight.push(
      client.request('GET', `${reader.gateway.api}${readPath(kind, conversation.id)}`, reader.token).then(
        (answer) => reads.answered(kind, answer.status, nowMs() - issuedAt),
        (error: unknown) => reads.failed(reasonOf(error)),
      ),
    );
  };

  const withConversations = conversations.length > 0;
  const [sending] = await Promise.all([
    paceOpenLoop({ startAt: order.startAt, rate: order.rate, total: withConversations ? order.total : 0 }, (i, lateMs, scheduledAt) => {
      maxSendLagMs = Math.max(maxSendLagMs, lateMs);
      sendOne(i, scheduledAt);
    }),
    paceOpenLoop({ startAt: order.startAt, rate: order.readRate || 1, total: withConversations ? order.readTotal : 0 }, readOne),
  ]);

  // Grace: answers and deliveries still on their way (and the last reads: each is bounded by the server).
  const graceEnd = nowMs() + order.graceMs;
  while (track.outstanding() > 0 && nowMs() < graceEnd) await sleep(50);
  await Promise.all(readsInFlight);
  const totals = track.totals();
  return {
    ...totals,
    firstSendAt: sending.firstAt,
    lastSendAt: sending.lastAt,
    maxSendLagMs,
    disconnects: { ...disconnects },
    reads: reads.totals(),
  };
}
