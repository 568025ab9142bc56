import type { WebSocket } from 'ws';
import { compareFeedPositions, type FeedPosition } from '../../event-store/recorded-event.js';
import type { Logger } from '../../shared/logger.js';
import type { AuthenticatedUser, VerifyToken } from '../auth/verify-token.js';
import type { ChatOperations } from '../chat-operations.js';
import { describeError, GatewayError } from '../errors.js';
import { parseClientFrame, type ClientFrame, type RequestId } from './client-frames.js';
import { isEventFrame, type DeliveredFrame } from './delivered-frames.js';
import { CLOSE, serverFrames } from './server-frames.js';
import type { Recovery, RegisteredSocket, SocketRegistry } from './socket-registry.js';

/** An event frame as the catch-up reader returns it. */
export type ReplayFrame = { readonly conversation_id: string; readonly seq: number; readonly cursor: string };

/** The user's event frames after a feed position, or `resync_required` when there are too many to replay. */
export type CatchUp = (userId: number, after: FeedPosition) => Promise<{ frames: readonly ReplayFrame[] } | 'resync_required'>;

export type SessionDeps = {
  readonly operations: ChatOperations;
  readonly verifyToken: VerifyToken;
  readonly registry: SocketRegistry;
  readonly catchUp: CatchUp;
  /** The last feed position below the commit-safe horizon now (feed-horizon.ts). */
  readonly feedHorizon: () => Promise<FeedPosition>;
  readonly decodeCursor: (cursor: string) => FeedPosition | null;
  /** Publishes an ephemeral frame to a user's delivery subject. */
  readonly publish: (userId: number, frame: object) => void;
  readonly typingThrottle: { shouldForward(userId: number, conversationId: string, isTyping: boolean): boolean };
  readonly clock: () => Date;
  readonly logger: Logger;
  readonly authTimeoutMs: number;
  readonly sendQueueBytes: number;
};

export type SocketSession = RegisteredSocket & {
  /** Pings the peer; terminates it when it did not answer the previous ping. */
  heartbeat(): void;
  close(code: number, reason: string): void;
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
 * One WebSocket from open to close: authentication (upgrade-time, or a first `auth` frame within
 * `authTimeoutMs`), token expiry and refresh, client frames handled one at a time in arrival order (so a
 * client's sends are appended in the order it sent them), and delivery of event frames with, per
 * conversation, nothing at or below the last `seq` this socket was sent (the fan-out may repeat frames).
 *
 * Replay (`?since=` or `resume`): live frames are buffered from before the catch-up is read, the catch-up is
 * sent, then the buffered frames after the catch-up's last cursor: in order, without gap or duplicate.
 *
 * Recovery from a NATS outage (delivery-recovery.ts): core NATS drops what is published while the gateway's
 * subscriptions are gone, and the client, whose socket stayed open, would never ask for it. From `suspend`
 * (the disconnect) live frames are held; `recover` (after the reconnect) replays the same way from the
 * cursor of the last event frame this socket was sent, keeping the per-conversation seq guard so nothing
 * goes out twice. A socket that was sent no event frame yet replays from the horizon taken when it opened
 * (before it subscribed), so nothing committed after it opened is skipped.
 */
export function startSocketSession(
  socket: WebSocket,
  deps: SessionDeps,
  options: { readonly user: AuthenticatedUser | null; readonly since: string | null },
): SocketSession {
  const { logger, clock } = deps;
  let user: AuthenticatedUser | null = null;
  let registered = false;
  let closed = false;
  let alive = true;
  /** Frames held back while the socket is not live yet or replays; null when live. */
  let held: { frame: DeliveredFrame; text: string }[] | null = [];
  let heldBytes = 0;
  const lastSeq = new Map<string, number>();
  /**
   * Where `recover` reads from: the cursor of the last event frame sent, else the horizon taken at open (or
   * at the last resync_required), else the `?since=` position; null when unknown (recover sends
   * resync_required).
   */
  let recoverFrom: FeedPosition | string | null = null;
  /** NATS outages (suspend calls) seen, and how many of them a replay has covered: held while they differ. */
  let outages = 0;
  let outagesRecovered = 0;
  let inFlight = 0;
  let queue: Promise<void> = Promise.resolve();
  let authTimer: NodeJS.Timeout | undefined;
  let expiryTimer: NodeJS.Timeout | undefined;
  let terminateTimer: NodeJS.Timeout | undefined;

  function send(text: string): void {
    if (closed || socket.readyState !== socket.OPEN) return;
    // Bounded memory: a peer that leaves this much unread is cut off rather than buffered without end.
    if (socket.bufferedAmount + Buffer.byteLength(text) > deps.sendQueueBytes) {
      logger.warn({ userId: user?.userId, buffered: socket.bufferedAmount }, 'send queue full; closing slow socket');
      close(CLOSE.slowConsumer, 'send queue full: the client does not read fast enough');
      terminateTimer = setTimeout(() => socket.terminate(), TERMINATE_AFTER_MS);
      return;
    }
    socket.send(text);
  }

  const sendFrame = (frame: object): void => send(JSON.stringify(frame));

  /**
   * Sends a frame from the delivery subject or the catch-up, unless this socket already had its seq.
   * @returns whether it was sent.
   */
  function emit(frame: DeliveredFrame | ReplayFrame, text: string): boolean {
    // Typing frames have no seq and always pass.
    if ('seq' in frame) {
      if (frame.seq <= (lastSeq.get(frame.conversation_id) ?? 0)) return false;
      lastSeq.set(frame.conversation_id, frame.seq);
      recoverFrom = frame.cursor;
    }
    send(text);
    return true;
  }

  function close(code: number, reason: string): void {
    if (closed) return;
    closed = true;
    // A close reason is at most 123 bytes; ours are ASCII.
    socket.close(code, reason.slice(0, 120));
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

  /**
   * Ends a replay (or the wait for the first one): releases the held frames that come after `horizon`.
   * While a NATS outage is not replayed yet, everything stays held for `recover`.
   */
  function goLive(horizon: FeedPosition | null): void {
    if (outages !== outagesRecovered) return;
    const frames = held ?? [];
    held = null;
    heldBytes = 0;
    for (const { frame, text } of frames) {
      if (horizon && isEventFrame(frame)) {
        const position = deps.decodeCursor(frame.cursor);
        if (position && compareFeedPositions(position, horizon) <= 0) continue;
      }
      emit(frame, text);
    }
  }

  /** @throws GatewayError `invalid_input` for a cursor that is not one of ours (nothing is held then). */
  async function replay(since: string): Promise<{ replayed: number; resync_required: boolean }> {
    const after = deps.decodeCursor(since);
    if (!after) throw new GatewayError('invalid_input', 'since: not a valid cursor');
    if (!user) throw new Error('replay before authentication');
    held ??= [];
    let horizon: FeedPosition = after;
    try {
      const result = await withDeadline(deps.catchUp(user.userId, after), CATCH_UP_TIMEOUT_MS);
      if (result === 'timed_out') logger.warn({ userId: user.userId }, 'catch-up read timed out; sending resync_required');
      // A replay starts over: what this socket was sent before does not count against the catch-up.
      lastSeq.clear();
      if (result === 'resync_required' || result === 'timed_out') {
        sendFrame(serverFrames.resyncRequired(clock(), 'too many events to replay; refetch over REST'));
        recoverFrom = await readHorizon(user.userId);
        goLive(null);
        return { replayed: 0, resync_required: true };
      }
      recoverFrom = after;
      for (const frame of result.frames) {
        emit(frame, JSON.stringify(frame));
        horizon = deps.decodeCursor(frame.cursor) ?? horizon;
      }
      goLive(horizon);
      return { replayed: result.frames.length, resync_required: false };
    } catch (error) {
      goLive(null);
      throw error;
    }
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

  /** The replay behind `recover`; runs in the socket's queue, so never alongside a `resume` replay. */
  async function replayMissed(): Promise<Recovery> {
    if (closed || !user || outages === outagesRecovered) return { replayed: 0, resyncRequired: false };
    const { userId } = user;
    const covering = outages;
    const after = typeof recoverFrom === 'string' ? deps.decodeCursor(recoverFrom) : recoverFrom;
    let result: Awaited<ReturnType<CatchUp>> | 'timed_out' | 'failed' | 'no_position' = 'no_position';
    if (after) {
      try {
        result = await withDeadline(deps.catchUp(userId, after), CATCH_UP_TIMEOUT_MS);
      } catch (error) {
        logger.warn({ err: error, userId }, 'catch-up read after a NATS reconnect failed');
        result = 'failed';
      }
    }
    if (closed) return { replayed: 0, resyncRequired: false };
    if (after && typeof result === 'object') {
      // Unlike `resume`, the seq guard stays: the client has what this socket sent, and gets none of it again.
      let replayed = 0;
      let horizon = after;
      for (const frame of result.frames) {
        if (emit(frame, JSON.stringify(frame))) replayed++;
        horizon = deps.decodeCursor(frame.cursor) ?? horizon;
      }
      // A newer outage that began meanwhile keeps the frames held until its own replay.
      outagesRecovered = covering;
      goLive(horizon);
      logger.debug({ userId, replayed }, 'replayed after a NATS reconnect');
      return { replayed, resyncRequired: false };
    }
    logger.warn({ userId, why: result }, 'sending resync_required after a NATS reconnect');
    sendFrame(serverFrames.resyncRequired(clock(), 'live frames may have been missed and cannot be replayed; refetch over REST'));
    recoverFrom = await readHorizon(userId);
    outagesRecovered = covering;
    goLive(null);
    return { replayed: 0, resyncRequired: true };
  }

  async function authenticated(current: AuthenticatedUser): Promise<void> {
    clearTimeout(authTimer);
    user = current;
    scheduleExpiry(current);
    // Where a replay after a NATS outage starts until this socket is sent an event frame. Taken before the
    // socket is registered for live frames, so every event committed after it opened sorts after it.
    const since = options.since === null ? null : deps.decodeCursor(options.since);
    recoverFrom = since ?? (await readHorizon(current.userId));
    if (closed) return;
    const added = await deps.registry.add(current.userId, session);
    if (closed) {
      if (added === 'added') deps.registry.remove(current.userId, session);
      return;
    }
    if (added === 'too_many') return close(CLOSE.tooManySockets, 'too many sockets for this user');
    registered = true;
    logger.debug({ userId: current.userId }, 'socket authenticated');
    sendFrame(serverFrames.connected(clock(), current.userId));
    if (options.since === null) return goLive(null);
    try {
      await replay(options.since);
    } catch (error) {
      answerError(undefined, error);
    }
  }

  function answerError(requestId: RequestId | undefined, error: unknown): void {
    const answer = describeError(error);
    if (answer.internal) logger.error({ err: error, userId: user?.userId }, 'socket frame failed');
    sendFrame(serverFrames.error(clock(), requestId, answer.wsCode, answer.message));
  }

  async function handle(frame: ClientFrame, current: AuthenticatedUser): Promise<unknown> {
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
        });
        return message;
      }
      case 'join_conversation':
      case 'read': {
        const receipt = await deps.operations.markRead(userId, frame.conversation_id);
        return { conversation_id: frame.conversation_id, ...receipt };
      }
      case 'typing': {
        const other = await deps.operations.otherParticipant(userId, frame.conversation_id);
        const forwarded = deps.typingThrottle.shouldForward(userId, frame.conversation_id, frame.is_typing);
        if (forwarded) deps.publish(other, serverFrames.typing(clock(), frame.conversation_id, userId, frame.is_typing));
        return { forwarded };
      }
      case 'resume':
        return replay(frame.since);
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
      return close(CLOSE.unauthorized, error instanceof GatewayError ? error.message : 'unauthorized');
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
    try {
      const data = await handle(frame, user);
      if (data !== NO_ACK && frame.request_id !== undefined) sendFrame(serverFrames.ack(clock(), frame.request_id, data));
    } catch (error) {
      answerError(frame.request_id, error);
    }
  }

  const session: SocketSession = {
    deliver(frame, text) {
      if (closed) return;
      if (held === null) {
        emit(frame, text);
        return;
      }
      held.push({ frame, text });
      heldBytes += text.length;
      if (heldBytes > deps.sendQueueBytes) close(CLOSE.slowConsumer, 'too many frames waiting while replaying');
    },
    suspend() {
      if (closed) return;
      outages++;
      held ??= [];
    },
    recover() {
      const task = queue.then(replayMissed).catch((error: unknown): Recovery => {
        logger.error({ err: error, userId: user?.userId }, 'replay after a NATS reconnect failed');
        close(CLOSE.internalError, 'internal error');
        return { replayed: 0, resyncRequired: false };
      });
      queue = task.then(() => undefined);
      return task;
    },
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
    if (inFlight >= MAX_FRAMES_IN_FLIGHT) {
      sendFrame(serverFrames.error(clock(), undefined, 'rate_limited', 'too many frames in flight; wait for answers'));
      return;
    }
    inFlight++;
    const text = isBinary ? null : Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8');
    queue = queue
      .then(() => {
        // Once the server closed this socket (shutdown, slow reader, error), frames still waiting are not
        // handled: no answer could reach the client, which retries them (by client_msg_id) on reconnect.
        if (closed) return undefined;
        if (text === null) return answerError(undefined, new GatewayError('invalid_input', 'frames must be JSON text, not binary'));
        return onText(text);
      })
      .catch((error: unknown) => {
        logger.error({ err: error, userId: user?.userId }, 'socket frame handling failed');
        close(CLOSE.internalError, 'internal error');
      })
      .finally(() => {
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
  });

  if (options.user) {
    const current = options.user;
    queue = queue.then(() => authenticated(current)).catch((error: unknown) => {
      logger.error({ err: error, userId: current.userId }, 'socket setup failed');
      close(CLOSE.internalError, 'internal error');
    });
  } else {
    authTimer = setTimeout(
      () => close(CLOSE.unauthorized, `no auth frame within ${deps.authTimeoutMs} ms`),
      deps.authTimeoutMs,
    );
  }
  return session;
}
