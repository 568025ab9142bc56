import type { WebSocket } from 'ws';
import { traceMetadata, type RequestTrace } from '../../event-store/event-metadata.js';
import type { FeedPosition } from '../../event-store/recorded-event.js';
import { newUlid } from '../../shared/ulid.js';
import { frameTrace } from '../request-context.js';
import type { Logger } from '../../shared/logger.js';
import type { RevocableSocket } from '../auth/revocation-sweep.js';
import type { AuthenticatedUser, VerifyToken } from '../auth/verify-token.js';
import type { ChatOperations } from '../chat-operations.js';
import { describeError, GatewayError } from '../errors.js';
import type { RateLimiter } from '../rate-limit.js';
import type { SocketLease, SocketLeases } from '../socket-leases.js';
import { parseClientFrame, requestIdOf, type ClientFrame, type RequestId } from './client-frames.js';
import { createDeliveryGate, type CatchUpFrame, type CatchUpResult, type Outgoing } from './delivery-gate.js';
import { CLOSE, serverFrames } from './server-frames.js';
import type { Recovery, RegisteredSocket, SocketRegistry } from './socket-registry.js';
import { createSocketWriter } from './socket-writer.js';

/** The user's event frames after a feed position, or `resync_required` when there are too many to replay. */
export type CatchUp = (userId: number, after: FeedPosition) => Promise<{ frames: readonly CatchUpFrame[] } | 'resync_required'>;

export type SessionDeps = {
  readonly operations: ChatOperations;
  readonly verifyToken: VerifyToken;
  readonly registry: SocketRegistry;
  /** The per-user socket cap across gateways. */
  readonly leases: Pick<SocketLeases, 'acquire' | 'release'>;
  /** Replays per user (`?since=` and `resume`): each is a catch-up read. */
  readonly resumeLimiter: Pick<RateLimiter, 'consume'>;
  readonly catchUp: CatchUp;
  /** The last feed position below the commit-safe horizon now (feed-horizon.ts). */
  readonly feedHorizon: () => Promise<FeedPosition>;
  readonly decodeCursor: (cursor: string) => FeedPosition | null;
  /** Publishes an ephemeral frame to a user's delivery subject. */
  readonly publish: (userId: number, frame: object) => void;
  readonly typingThrottle: { shouldForward(userId: number, conversationId: string): boolean };
  readonly clock: () => Date;
  readonly logger: Logger;
  readonly authTimeoutMs: number;
  /** Unsent bytes of live frames per socket before it is closed (4008); also the bound on frames held while replaying. */
  readonly sendQueueBytes: number;
  /** Most bytes one catch-up may send; a bigger one is replaced by `resync_required`. */
  readonly catchUpBytes: number;
};

export type SocketSession = RegisteredSocket & RevocableSocket & {
  /** Whether the socket has authenticated (upgrade-time or first frame). */
  readonly authenticated: boolean;
  /** Its place in the user's socket count across gateways, renewed by the gateway; null before it has one. */
  readonly lease: SocketLease | null;
  /** Pings the peer; terminates it when it did not answer the previous ping. */
  heartbeat(): void;
  close(code: number, reason: string): void;
  /**
   * For a gateway that is going away: the frames received so far are handled and answered, frames received
   * from now on are answered `unavailable`, then the socket closes with 1012 (reconnect elsewhere, with
   * `?since=`). Resolves once the close is sent.
   */
  drain(): Promise<void>;
  /** Cuts the connection without a closing handshake. */
  terminate(): void;
  onceClosed(listener: () => void): void;
  /** Resolves once every frame received so far has been handled (its command committed or failed). */
  settled(): Promise<void>;
};

/** Frames a socket may have waiting to be handled before more are refused. */
const MAX_FRAMES_IN_FLIGHT = 32;
/** After closing a peer that does not read, how long before the TCP connection is cut regardless. */
const TERMINATE_AFTER_MS = 2_000;
/** setTimeout's limit; a token valid for longer is re-checked when it fires. */
const MAX_TIMER_MS = 2_147_483_647;

const NO_ACK = Symbol('no ack');

/** A catch-up slower than this (a database in trouble) gives resync_required rather than a stalled socket. */
const CATCH_UP_TIMEOUT_MS = 10_000;
/** Reading the horizon is one trivial statement; past this the socket opens without a known position. */
const HORIZON_TIMEOUT_MS = 2_000;

async function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T | 'timed_out'> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timed_out'>((resolve) => {
    timer = setTimeout(() => resolve('timed_out'), ms);
  });
  try {
    return await Promise.race([promise, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * One WebSocket from open to close: the transport around the delivery gate (delivery-gate.ts), which
 * decides what of the user's event frames goes out and when. The session does the IO: authentication
 * (upgrade-time, or a first `auth` frame within `authTimeoutMs`), token expiry and refresh, client frames
 * handled one at a time in arrival order (so a client's sends are appended in the order it sent them), the
 * catch-up and horizon reads the gate asks for, and writing what the gate returns through a bounded writer
 * (socket-writer.ts) that lets a catch-up wait for a slow reader.
 *
 * Every client frame with a `request_id` gets an answer with it: its `ack` or `error`, also when it is
 * refused because too many frames are in flight.
 */
export function startSocketSession(
  socket: WebSocket,
  deps: SessionDeps,
  options: {
    readonly user: AuthenticatedUser | null;
    readonly since: string | null;
    /** Taken at the upgrade for a socket authenticated there; a first-frame socket takes its own. */
    readonly lease?: SocketLease;
    /** The upgrade request's (request-context.ts): its id is on the socket's log lines, its traceparent on each command's. */
    readonly trace?: RequestTrace;
  },
): SocketSession {
  const { clock } = deps;
  const socketTrace = options.trace ?? { requestId: newUlid() };
  const logger = deps.logger.child({ socket_request_id: socketTrace.requestId });
  const gate = createDeliveryGate({ decodeCursor: deps.decodeCursor, heldBytes: deps.sendQueueBytes, catchUpBytes: deps.catchUpBytes });
  const writer = createSocketWriter(socket, { maxUnsentBytes: deps.sendQueueBytes });
  let user: AuthenticatedUser | null = null;
  let lease: SocketLease | null = options.lease ?? null;
  let registered = false;
  let closed = false;
  let draining = false;
  let alive = true;
  let inFlight = 0;
  /** Client frames, the open sequence and recoveries run here one after another. */
  let queue: Promise<void> = Promise.resolve();
  let authTimer: NodeJS.Timeout | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  let terminateTimer: NodeJS.Timeout | undefined;

  function releaseLease(): void {
    if (lease) deps.leases.release(lease);
    lease = null;
  }

  function close(code: number, reason: string): void {
    if (closed) return;
    closed = true;
    // A close reason is at most 123 bytes; ours are ASCII.
    socket.close(code, reason.slice(0, 120));
  }

  function closeSlowReader(): void {
    logger.warn({ userId: user?.userId, buffered: socket.bufferedAmount }, 'send queue full; closing slow socket');
    close(CLOSE.slowConsumer, 'send queue full: the client does not read fast enough');
    terminateTimer = setTimeout(() => socket.terminate(), TERMINATE_AFTER_MS);
  }

  function write(text: string, patient = false): void {
    if (closed) return;
    if (!writer.write(text, { patient })) closeSlowReader();
  }

  const sendFrame = (frame: object): void => write(JSON.stringify(frame));

  /** Writes what the gate returned, in order. @returns how many catch-up frames and resyncs it held. */
  function send(outgoing: readonly Outgoing[]): Recovery {
    let replayed = 0;
    let resyncRequired = false;
    for (const item of outgoing) {
      if (item.kind === 'frame') {
        write(item.text, item.catchUp);
        if (item.catchUp) replayed++;
      } else {
        write(JSON.stringify(serverFrames.resyncRequired(clock(), item.reason)), true);
        resyncRequired = true;
      }
    }
    return { replayed, resyncRequired };
  }

  function scheduleExpiry(current: AuthenticatedUser): void {
    clearTimeout(expiryTimer);
    const delay = current.validUntilMs - clock().getTime();
    if (delay <= 0) return close(CLOSE.unauthorized, 'token expired');
    expiryTimer = setTimeout(() => {
      if (user && clock().getTime() < user.validUntilMs) scheduleExpiry(user);
      else close(CLOSE.unauthorized, 'token expired; send an auth frame with a fresh token before it expires');
    }, Math.min(delay, MAX_TIMER_MS));
  }

  /** The horizon now, or null (logged) when the database does not answer in time. */
  async function readHorizon(userId: number): Promise<FeedPosition | null> {
    try {
      const horizon = await withDeadline(deps.feedHorizon(), HORIZON_TIMEOUT_MS);
      if (horizon !== 'timed_out') return horizon;
      logger.warn({ userId }, 'reading the feed horizon timed out');
    } catch (error) {
      logger.warn({ err: error, userId }, 'could not read the feed horizon');
    }
    return null;
  }

  /**
   * The catch-up the gate asked for, bounded in time. A read that fails, times out or is too long is a
   * resync: the client refetches over REST, and the horizon read then is where a later recovery starts.
   */
  async function readCatchUp(userId: number, after: FeedPosition | null): Promise<CatchUpResult> {
    let result: Awaited<ReturnType<CatchUp>> | 'timed_out' | 'failed' | 'no_position' = 'no_position';
    if (after) {
      try {
        result = await withDeadline(deps.catchUp(userId, after), CATCH_UP_TIMEOUT_MS);
      } catch (error) {
        logger.warn({ err: error, userId }, 'catch-up read failed');
        result = 'failed';
      }
    }
    if (typeof result === 'object') return result;
    if (result !== 'resync_required') logger.warn({ userId, why: result }, 'sending resync_required');
    const reason =
      result === 'resync_required'
        ? 'too many events to replay; refetch over REST'
        : 'missed frames cannot be replayed now; refetch over REST';
    return { resync: reason, horizon: await readHorizon(userId) };
  }

  /**
   * A client's `resume` frame.
   * @throws GatewayError `rate_limited` or `invalid_cursor`; the socket stays as it was (live).
   */
  async function resume(userId: number, since: string): Promise<{ replayed: number; resync_required: boolean }> {
    await deps.resumeLimiter.consume(userId);
    const begun = gate.beginResume(since);
    if (begun === 'invalid_cursor') throw invalidCursor();
    const { replayed, resyncRequired } = send(gate.finishReplay(await readCatchUp(userId, begun.after)));
    return { replayed, resync_required: resyncRequired };
  }

  const invalidCursor = () => new GatewayError('invalid_cursor', 'since: not a cursor this server issued; live frames continue from now');

  /** After a NATS outage: replays what the subscription may have missed, once; nothing when not suspended. */
  async function recoverMissed(): Promise<Recovery> {
    if (closed || !user) return { replayed: 0, resyncRequired: false };
    const begun = gate.beginRecovery();
    if (begun === 'none') return { replayed: 0, resyncRequired: false };
    const recovery = send(gate.finishReplay(await readCatchUp(user.userId, begun.after)));
    logger.debug({ userId: user.userId, ...recovery }, 'replayed after a NATS reconnect');
    return recovery;
  }

  async function authenticated(current: AuthenticatedUser): Promise<void> {
    clearTimeout(authTimer);
    user = current;
    scheduleExpiry(current);
    // `?since=`: a replay, unless the cursor does not decode or the user is over the replay limit; then the
    // socket opens live from now, after an error (and a resync_required for the limit: the client did ask
    // for what it missed).
    let refused: unknown = null;
    let resuming: { readonly after: FeedPosition } | null = null;
    if (options.since !== null) {
      try {
        await deps.resumeLimiter.consume(current.userId);
        const begun = gate.beginResume(options.since);
        if (begun === 'invalid_cursor') refused = invalidCursor();
        else resuming = begun;
      } catch (error) {
        refused = error;
      }
    }
    // Without a replay, a recovery after an outage starts from the horizon, taken before the socket is
    // registered for live frames, so every event committed after it opened sorts after it.
    const start = resuming === null ? await readHorizon(current.userId) : null;
    if (closed) return;
    if (!lease) {
      const taken = await deps.leases.acquire(current.userId);
      if (taken === 'too_many') return close(CLOSE.tooManySockets, 'too many sockets for this user');
      lease = taken;
      // Closed while the lease was taken: the close handler ran before it existed.
      if (closed) return releaseLease();
    }
    const added = await deps.registry.add(current.userId, session);
    if (closed) {
      if (added === 'added') deps.registry.remove(current.userId, session);
      return;
    }
    if (added === 'too_many') return close(CLOSE.tooManySockets, 'too many sockets for this user');
    registered = true;
    logger.debug({ userId: current.userId }, 'socket authenticated');
    sendFrame(serverFrames.connected(clock(), current.userId));
    if (resuming !== null) {
      send(gate.finishReplay(await readCatchUp(current.userId, resuming.after)));
      return;
    }
    if (refused !== null) answerError(undefined, refused);
    if (refused instanceof GatewayError && refused.code !== 'invalid_cursor') {
      write(JSON.stringify(serverFrames.resyncRequired(clock(), 'the missed frames were not replayed; refetch over REST')), true);
    }
    send(gate.open(start));
  }

  function answerError(requestId: RequestId | undefined, error: unknown, trace?: RequestTrace): void {
    const answer = describeError(error);
    if (answer.report) logger.error({ err: error, userId: user?.userId, ...traceMetadata(trace) }, 'socket frame failed');
    sendFrame(serverFrames.error(clock(), requestId, answer.wsCode, answer.message));
  }

  async function handle(frame: ClientFrame, current: AuthenticatedUser, trace: RequestTrace): Promise<unknown> {
    const { userId } = current;
    switch (frame.type) {
      case 'auth': {
        const refreshed = await deps.verifyToken(frame.token);
        if (refreshed.userId !== userId) throw new GatewayError('unauthorized', 'token is for another user');
        user = refreshed;
        scheduleExpiry(refreshed);
        return { user_id: userId, valid_until: new Date(refreshed.validUntilMs).toISOString() };
      }
      case 'send_message': {
        const { message } = await deps.operations.sendMessage(userId, {
          conversationId: frame.conversation_id,
          content: frame.content,
          clientMsgId: frame.client_msg_id ?? undefined,
        }, trace);
        return message;
      }
      case 'join_conversation':
      case 'read': {
        const receipt = await deps.operations.markRead(userId, frame.conversation_id, trace);
        return { conversation_id: frame.conversation_id, ...receipt };
      }
      case 'typing': {
        const other = await deps.operations.otherParticipant(userId, frame.conversation_id);
        const forwarded = deps.typingThrottle.shouldForward(userId, frame.conversation_id);
        if (forwarded) deps.publish(other, serverFrames.typing(clock(), frame.conversation_id, userId, frame.is_typing));
        return { forwarded };
      }
      case 'resume':
        return resume(userId, frame.since);
      case 'ping':
        sendFrame(serverFrames.pong(clock(), frame.request_id));
        return NO_ACK;
      default: {
        const unreachable: never = frame;
        throw new Error(`unhandled frame ${String(unreachable)}`);
      }
    }
  }

  /** The first frame of a socket without upgrade-time auth must be a valid `auth` frame. */
  async function authenticateFirstFrame(text: string): Promise<void> {
    const parsed = parseClientFrame(text);
    if (!parsed.ok || parsed.frame.type !== 'auth') {
      return close(CLOSE.unauthorized, 'authenticate first: {"type":"auth","token":"<JWT>"}');
    }
    let current: AuthenticatedUser;
    try {
      current = await deps.verifyToken(parsed.frame.token);
    } catch (error) {
      // Only a refused token logs the user out (4401); the server failing to check one (Redis down) is 1011.
      if (error instanceof GatewayError && error.code === 'unauthorized') return close(CLOSE.unauthorized, error.message);
      logger.error({ err: error }, 'could not check a first-frame token');
      return close(CLOSE.internalError, 'cannot check tokens right now; retry shortly');
    }
    if (closed) return;
    await authenticated(current);
    if (parsed.frame.request_id !== undefined) {
      sendFrame(serverFrames.ack(clock(), parsed.frame.request_id, { user_id: current.userId }));
    }
  }

  async function onText(text: string): Promise<void> {
    if (closed) return;
    if (!user) return authenticateFirstFrame(text);
    const parsed = parseClientFrame(text);
    if (!parsed.ok) return answerError(parsed.requestId, parsed.error);
    const { frame } = parsed;
    const trace = frameTrace(frame.request_id, socketTrace, newUlid);
    try {
      const data = await handle(frame, user, trace);
      if (data !== NO_ACK && frame.request_id !== undefined) sendFrame(serverFrames.ack(clock(), frame.request_id, data));
    } catch (error) {
      answerError(frame.request_id, error, trace);
    }
  }

  /** Runs `task` after everything queued; a failure closes the socket with 1011. */
  function enqueue<T>(task: () => Promise<T>, failed: T, what: string): Promise<T> {
    const run = queue.then(task).catch((error: unknown) => {
      logger.error({ err: error, userId: user?.userId }, `${what} failed`);
      close(CLOSE.internalError, 'internal error');
      return failed;
    });
    queue = run.then(() => undefined);
    return run;
  }

  const session: SocketSession = {
    get authenticated() {
      return user !== null;
    },
    get lease() {
      return closed ? null : lease;
    },
    get revocationKey() {
      return closed ? null : (user?.revocationKey ?? null);
    },
    revoke() {
      logger.info({ userId: user?.userId }, 'token revoked: closing the socket');
      close(CLOSE.unauthorized, 'token has been revoked');
    },
    deliver(frame, text) {
      if (!closed) send(gate.deliver(frame, text));
    },
    deliverEarly(frame) {
      if (closed) return false;
      const out = gate.deliverEarly(frame);
      send(out);
      return out.length > 0;
    },
    suspend() {
      if (!closed) gate.suspend();
    },
    recover: () => enqueue(recoverMissed, { replayed: 0, resyncRequired: false }, 'replay after a NATS reconnect'),
    heartbeat() {
      if (!alive) {
        logger.debug({ userId: user?.userId }, 'peer did not answer the last ping; terminating');
        socket.terminate();
        return;
      }
      alive = false;
      socket.ping();
    },
    close,
    async drain() {
      draining = true;
      await session.settled();
      close(CLOSE.serviceRestart, 'server restarting: reconnect, with ?since=<last cursor>');
    },
    terminate: () => socket.terminate(),
    onceClosed(listener) {
      if (socket.readyState === socket.CLOSED) listener();
      else socket.once('close', listener);
    },
    async settled() {
      // Frames keep being chained onto the queue while earlier ones run: wait until it stops growing.
      for (let current = queue; ; current = queue) {
        await current.catch(() => undefined);
        if (current === queue) return;
      }
    },
  };

  socket.on('pong', () => {
    alive = true;
  });
  socket.on('message', (data, isBinary) => {
    alive = true;
    const text = isBinary ? null : Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8');
    if (inFlight >= MAX_FRAMES_IN_FLIGHT) {
      const requestId = text === null ? undefined : requestIdOf(text);
      answerError(requestId, new GatewayError('rate_limited', `more than ${MAX_FRAMES_IN_FLIGHT} frames in flight; wait for answers`));
      return;
    }
    inFlight++;
    const arrivedDraining = draining;
    void enqueue(
      async () => {
        // Once the server closed this socket (shutdown, slow reader, error), frames still waiting are not
        // handled: no answer could reach the client, which retries them (by client_msg_id) on reconnect.
        if (closed) return;
        if (text === null) return answerError(undefined, new GatewayError('invalid_input', 'frames must be JSON text, not binary'));
        if (arrivedDraining) return answerError(requestIdOf(text), new GatewayError('unavailable', 'server restarting: send this again once reconnected'));
        return onText(text);
      },
      undefined,
      'socket frame handling',
    ).finally(() => {
      inFlight--;
    });
  });
  socket.on('error', (error) => {
    // ws reports a frame over maxPayload here, then closes with 1009 on its own.
    logger.debug({ err: error, userId: user?.userId }, 'socket error');
  });
  socket.on('close', () => {
    closed = true;
    clearTimeout(authTimer);
    clearTimeout(expiryTimer);
    clearTimeout(terminateTimer);
    if (registered && user) deps.registry.remove(user.userId, session);
    registered = false;
    releaseLease();
  });

  if (options.user) {
    const current = options.user;
    void enqueue(() => authenticated(current), undefined, 'socket setup');
  } else {
    authTimer = setTimeout(
      () => close(CLOSE.unauthorized, `no auth frame within ${deps.authTimeoutMs} ms`),
      deps.authTimeoutMs,
    );
  }
  return session;
}
