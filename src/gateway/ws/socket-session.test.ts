import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import type { FeedPosition } from '../../event-store/recorded-event.js';
import { decodeCursor, encodeCursor } from '../../delivery/cursor.js';
import type { NewMessageFrame } from '../../delivery/event-frames.js';
import type { ChatOperations } from '../chat-operations.js';
import { createSocketDeadlines } from './socket-deadlines.js';
import { createSocketRegistry, type SocketRegistry } from './socket-registry.js';
import { startSocketSession, type CatchUp, type SocketSession } from './socket-session.js';

/**
 * A session's recovery from a NATS outage, over a real WebSocket, with the catch-up read scripted so the
 * interleavings are exact (test/integration/gateway/nats-reconnect.test.ts runs it against real servers).
 */

const USER = 7;
const CONVERSATION = 'c1';
const OPENED_AT: FeedPosition = { transactionId: 99n, globalPosition: 2n ** 63n - 1n };

const at = (seq: number): FeedPosition => ({ transactionId: BigInt(100 + seq), globalPosition: BigInt(seq) });

function frame(seq: number): NewMessageFrame {
  const timestamp = new Date(0).toISOString();
  return {
    type: 'new_message',
    conversation_id: CONVERSATION,
    seq,
    cursor: encodeCursor(at(seq)),
    timestamp,
    data: { id: `m${seq}`, sender_id: 8, message: `#${seq}`, timestamp, read_at: null, client_msg_id: null },
  };
}

type Harness = {
  readonly session: SocketSession;
  /** The client's end. */
  readonly client: WebSocket;
  /** The server's end, under the session. */
  readonly server: WebSocket;
  readonly registry: SocketRegistry;
  /** Every frame the client received, parsed. */
  readonly received: { type: string; seq?: number; request_id?: string; data?: unknown }[];
  /** The positions the catch-up was asked to read after. */
  readonly reads: FeedPosition[];
  live(seq: number): void;
  /** Resolves once the client has received `count` frames in all. */
  receivedCount(count: number): Promise<void>;
};

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

async function open(
  catchUp: (after: FeedPosition) => ReturnType<CatchUp>,
  operations: Partial<ChatOperations> = {},
): Promise<Harness> {
  const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' });
  await once(wss, 'listening');
  const accepted = once(wss, 'connection') as Promise<[WebSocket]>;
  const client = new WebSocket(`ws://127.0.0.1:${(wss.address() as AddressInfo).port}`);
  const received: Harness['received'] = [];
  const listeners = new Set<() => void>();
  client.on('message', (data: Buffer) => {
    received.push(JSON.parse(data.toString('utf8')) as Harness['received'][number]);
    for (const listener of listeners) listener();
  });
  const [server] = await accepted;
  cleanups.push(async () => {
    client.terminate();
    await new Promise((resolve) => wss.close(resolve));
  });
  const registry = createSocketRegistry({
    maxSocketsPerUser: 10,
    subscriptions: { acquire: () => Promise.resolve(), release: () => undefined },
  });
  const reads: FeedPosition[] = [];
  const session = startSocketSession(
    server,
    {
      operations: operations as ChatOperations,
      verifyToken: () => Promise.reject(new Error('not used')),
      registry,
      resumeLimiter: { consume: () => Promise.resolve({ key: 'k', member: 'm' }) },
      leases: { acquire: (userId) => Promise.resolve({ userId, id: 'lease' }), release: () => undefined },
      catchUp: (_userId, after) => {
        reads.push(after);
        return catchUp(after);
      },
      feedHorizon: () => Promise.resolve(OPENED_AT),
      decodeCursor,
      publish: () => undefined,
      typingThrottle: { shouldForward: () => true },
      clock: () => new Date(),
      logger: pino({ level: 'silent' }),
      authTimeoutMs: 5_000,
      sendQueueBytes: 1 << 20,
      catchUpBytes: 1 << 20,
      deadlines: createSocketDeadlines(),
    },
    { user: { userId: USER, validUntilMs: Date.now() + 3_600_000, revocationKey: 'blacklist:test' }, since: null },
  );
  const receivedCount = (count: number) =>
    new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`received ${JSON.stringify(received)}, expected ${count} frames`)), 5_000);
      const check = () => {
        if (received.length < count) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve();
      };
      listeners.add(check);
      check();
    });
  await receivedCount(1); // connected
  return {
    session,
    client,
    server,
    registry,
    received,
    reads,
    live: (seq) => registry.deliver(USER, frame(seq), JSON.stringify(frame(seq))),
    receivedCount,
  };
}

const seqs = (harness: Harness) => harness.received.filter((item) => item.seq !== undefined).map((item) => item.seq);
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

describe('a socket across a NATS outage', () => {
  it('holds live frames from the disconnect, replays from its last cursor, then sends the held ones not replayed', async () => {
    const harness = await open(() => Promise.resolve({ frames: [frame(2), frame(3)] }));
    harness.live(1);
    await harness.receivedCount(2);
    harness.registry.suspendAll();
    // The next connection's frames: 3 (also in the catch-up) and 4.
    harness.live(3);
    harness.live(4);
    await settle();
    expect(seqs(harness)).toEqual([1]);

    const [socket] = harness.registry.resumeAll();
    expect(await socket!.recover()).toEqual({ replayed: 2, resyncRequired: false });
    await harness.receivedCount(5);
    expect(harness.reads).toEqual([at(1)]);
    expect(seqs(harness)).toEqual([1, 2, 3, 4]);
    // Live again, with the seq guard kept.
    harness.live(4);
    harness.live(5);
    await harness.receivedCount(6);
    await settle();
    expect(seqs(harness)).toEqual([1, 2, 3, 4, 5]);
  });

  it('replays from the horizon taken at open when it was sent no event frame yet', async () => {
    const harness = await open(() => Promise.resolve({ frames: [frame(1)] }));
    harness.registry.suspendAll();
    expect(await harness.session.recover()).toEqual({ replayed: 1, resyncRequired: false });
    expect(harness.reads).toEqual([OPENED_AT]);
    await harness.receivedCount(2);
  });

  it('suspends a socket registered during the outage, and recovers nothing when not suspended', async () => {
    const harness = await open(() => Promise.resolve({ frames: [] }));
    expect(await harness.session.recover()).toEqual({ replayed: 0, resyncRequired: false });
    expect(harness.reads).toEqual([]);

    harness.registry.suspendAll();
    const late = {
      suspended: false,
      deliver: () => undefined,
      deliverEarly: () => false,
      suspend: () => void (late.suspended = true),
      recover: () => Promise.resolve({ replayed: 0, resyncRequired: false }),
    };
    await harness.registry.add(USER, late);
    expect(late.suspended).toBe(true);
    expect(harness.registry.resumeAll()).toHaveLength(2);
  });

  it('keeps holding when the connection drops again during the replay, until the next replay', async () => {
    let release: (frames: NewMessageFrame[]) => void = () => undefined;
    const answers = [
      new Promise<{ frames: NewMessageFrame[] }>((resolve) => (release = (frames) => resolve({ frames }))),
      Promise.resolve({ frames: [frame(3)] }),
    ];
    const harness = await open(() => answers.shift()!);
    harness.live(1);
    await harness.receivedCount(2);
    harness.registry.suspendAll();
    const first = harness.session.recover();
    await settle();
    harness.registry.suspendAll(); // dropped again while the first catch-up is read
    harness.live(4);
    release([frame(2)]);
    expect(await first).toEqual({ replayed: 1, resyncRequired: false });
    await settle();
    expect(seqs(harness)).toEqual([1, 2]);

    expect(await harness.session.recover()).toEqual({ replayed: 1, resyncRequired: false });
    expect(harness.reads).toEqual([at(1), at(2)]);
    await harness.receivedCount(5);
    expect(seqs(harness)).toEqual([1, 2, 3, 4]);
  });

  it('sends resync_required when the catch-up is too long, then goes live', async () => {
    const harness = await open(() => Promise.resolve('resync_required'));
    harness.live(1);
    await harness.receivedCount(2);
    harness.registry.suspendAll();
    harness.live(7);
    expect(await harness.session.recover()).toEqual({ replayed: 0, resyncRequired: true });
    await harness.receivedCount(4);
    expect(harness.received.map((item) => item.type)).toEqual(['connected', 'new_message', 'resync_required', 'new_message']);
  });
});

describe('a socket drained for a restart', () => {
  it('answers the frame it is handling, refuses the ones that arrive after, then closes with 1012', async () => {
    let release: () => void = () => undefined;
    let started: () => void = () => undefined;
    const handling = new Promise<void>((resolve) => (started = resolve));
    const sent: string[] = [];
    const harness = await open(() => Promise.resolve({ frames: [] }), {
      sendMessage: async (_userId, command) => {
        sent.push(command.content);
        started();
        await new Promise<void>((resolve) => (release = resolve));
        return { message: { id: 'm1', msg: command.content } } as unknown as Awaited<ReturnType<ChatOperations['sendMessage']>>;
      },
    });
    const closed = once(harness.client, 'close') as Promise<[number, Buffer]>;
    const send = (requestId: string, content: string) =>
      harness.client.send(JSON.stringify({ type: 'send_message', request_id: requestId, conversation_id: CONVERSATION, content }));

    send('r1', 'in flight');
    await handling;

    const drained = harness.session.drain();
    // Registered after the session's listener: it runs once the session has taken the frame.
    const late = once(harness.server, 'message');
    send('r2', 'too late');
    await late;
    release();
    await drained;

    const [code] = await closed;
    expect(code).toBe(1012);
    expect(sent).toEqual(['in flight']);
    // The answers, in order, and nothing else: toMatchObject on an array holds its length too.
    expect(harness.received.slice(1)).toMatchObject([
      { type: 'ack', request_id: 'r1', data: { id: 'm1', msg: 'in flight' } },
      { type: 'error', request_id: 'r2', data: { code: 'unavailable' } },
    ]);
  });
});
