import type { RawData, WebSocket } from 'ws';
import { traceMetadata, type RequestTrace } from '../../event-store/event-metadata.js';
import type { FeedPosition } from '../../event-store/recorded-event.js';
import { flatString } from '../../shared/flat-string.js';
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
import { createDeliveryGate, type CatchUpFrame, type CatchUpResult, type DeliveryGate, type Outgoing } from './delivery-gate.js';
import type { NewMessageFrame } from '../../delivery/event-frames.js';
import type { DeliveredFrame, EphemeralFrame } from './delivered-frames.js';
import { CLOSE, serverFrames } from './server-frames.js';
import type { Recovery, RegisteredSocket, SocketRegistry } from './socket-registry.js';
import type { Deadline, DeadlineOwner, SocketDeadlines } from './socket-deadlines.js';
import { BoundedSocketWriter } from './socket-writer.js';

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
  /** Sends an ephemeral frame to every socket of a user, on every gateway (gateway.ts `sendSignal`). */
  readonly publish: (userId: number, frame: EphemeralFrame) => void;
  readonly typingThrottle: { shouldForward(userId: number, conversationId: string): boolean };
  readonly clock: () => Date;
  readonly logger: Logger;
  readonly authTimeoutMs: number;
  /** Unsent bytes of live frames per socket before it is closed (4008); also the bound on frames held while replaying. */
  readonly sendQueueBytes: number;
  /** Most bytes one catch-up may send; a bigger one is replaced by `resync_required`. */
  readonly catchUpBytes: number;
  /** The gateway's one schedule of socket deadlines: the auth timeout, token expiry, the cut-off after closing a slow reader. */
  readonly deadlines: SocketDeadlines;
  /** Told once the socket has closed, after the session let go of its registration and lease. */
  readonly onClosed?: (session: SocketSession) => void;
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
const NOTHING_RECOVERED: Recovery = { replayed: 0, resyncRequired: false };

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
  return new Session(socket, deps, options);
}

/** The session of each socket, for the listeners (shared by all sockets, `this` being the socket). */
const SESSION = Symbol('socket session');
type SessionSocket = WebSocket & { [SESSION]?: Session };
const sessionOf = (socket: WebSocket): Session => (socket as SessionSocket)[SESSION]!;

type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/**
 * A gateway holds thousands of mostly idle sockets, so a session is one object with its methods on the
 * prototype: no closures, timers or promises of its own while idle. The socket's listeners are shared
 * functions that find it on the socket; its deadlines are in the gateway's one schedule (socket-deadlines.ts);
 * its queue of frames is a promise only while something is queued; its logger is made at its first line. It
 * is its socket's writer too (it extends the writer rather than holding one: one object per socket fewer).
 */
class Session extends BoundedSocketWriter implements SocketSession, DeadlineOwner {
  readonly #socket: WebSocket;
  readonly #deps: SessionDeps;
  readonly #trace: RequestTrace;
  readonly #since: string | null;
  readonly #gate: DeliveryGate;
  readonly #deadline: Deadline;
  /** What `#deadline` is for. */
  #deadlineKind: 'auth' | 'expiry' | 'terminate' = 'auth';
  #logger: Logger | null = null;
  #user: AuthenticatedUser | null = null;
  #lease: SocketLease | null;
  #registered = false;
  #closed = false;
  #draining = false;
  #alive = true;
  #inFlight = 0;
  /** Client frames, the open sequence and recoveries run here one after another; null while nothing is queued. */
  #queue: Promise<void> | null = null;

  constructor(
    socket: WebSocket,
    deps: SessionDeps,
    options: { readonly user: AuthenticatedUser | null; readonly since: string | null; readonly lease?: SocketLease; readonly trace?: RequestTrace },
  ) {
    super(socket, deps.sendQueueBytes);
    this.#socket = socket;
    this.#deps = deps;
    this.#trace = options.trace ?? { requestId: flatString(newUlid()) };
    this.#since = options.since;
    this.#lease = options.lease ?? null;
    this.#gate = createDeliveryGate({ decodeCursor: deps.decodeCursor, heldBytes: deps.sendQueueBytes, catchUpBytes: deps.catchUpBytes });
    this.#deadline = deps.deadlines.create(this);

    (socket as SessionSocket)[SESSION] = this;
    socket.on('pong', Session.#onPong);
    socket.on('message', Session.#onMessage);
    socket.on('error', Session.#onError);
    socket.on('close', Session.#onClose);

    if (options.user) {
      const current = options.user;
      void this.#enqueue(() => this.#authenticated(current), undefined, 'socket setup');
    } else {
      this.#deadlineKind = 'auth';
      deps.deadlines.set(this.#deadline, deps.authTimeoutMs);
    }
  }

  static #onPong(this: WebSocket): void {
    sessionOf(this).#alive = true;
  }

  static #onMessage(this: WebSocket, data: RawData, isBinary: boolean): void {
    sessionOf(this).#received(data, isBinary);
  }

  static #onError(this: WebSocket, error: Error): void {
    // ws reports a frame over maxPayload here, then closes with 1009 on its own.
    const session = sessionOf(this);
    session.#log('debug', { err: error, userId: session.#user?.userId }, 'socket error');
  }

  static #onClose(this: WebSocket): void {
    sessionOf(this).#socketClosed();
  }

  get authenticated(): boolean {
    return this.#user !== null;
  }

  get lease(): SocketLease | null {
    return this.#closed ? null : this.#lease;
  }

  get revocationKey(): string | null {
    return this.#closed ? null : (this.#user?.revocationKey ?? null);
  }

  revoke(): void {
    this.#log('info', { userId: this.#user?.userId }, 'token revoked: closing the socket');
    this.close(CLOSE.unauthorized, 'token has been revoked');
  }

  deliver(frame: DeliveredFrame, text: string): void {
    if (!this.#closed) this.#send(this.#gate.deliver(frame, text));
  }

  deliverEarly(frame: NewMessageFrame, previous: FeedPosition | null): boolean {
    if (this.#closed) return false;
    const out = this.#gate.deliverEarly(frame, previous);
    this.#send(out);
    return out.length > 0;
  }

  suspend(): void {
    if (!this.#closed) this.#gate.suspend();
  }

  recover(): Promise<Recovery> {
    return this.#enqueue(() => this.#recoverMissed(), NOTHING_RECOVERED, 'replay after a NATS reconnect');
  }

  heartbeat(): void {
    if (!this.#alive) {
      this.#log('debug', { userId: this.#user?.userId }, 'peer did not answer the last ping; terminating');
      this.#socket.terminate();
      return;
    }
    this.#alive = false;
    this.#socket.ping();
  }

  close(code: number, reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    // A close reason is at most 123 bytes; ours are ASCII.
    this.#socket.close(code, reason.slice(0, 120));
  }

  async drain(): Promise<void> {
    this.#draining = true;
    await this.settled();
    this.close(CLOSE.serviceRestart, 'server restarting: reconnect, with ?since=<last cursor>');
  }

  terminate(): void {
    this.#socket.terminate();
  }

  onceClosed(listener: () => void): void {
    if (this.#socket.readyState === this.#socket.CLOSED) listener();
    else this.#socket.once('close', listener);
  }

  async settled(): Promise<void> {
    // Frames keep being chained onto the queue while earlier ones run: wait until it is empty.
    for (let current = this.#queue; current !== null; current = this.#queue) await current.catch(() => undefined);
  }

  /** The gateway's schedule calls this when the socket's deadline passed. */
  deadlinePassed(): void {
    switch (this.#deadlineKind) {
      case 'auth':
        return this.close(CLOSE.unauthorized, `no auth frame within ${this.#deps.authTimeoutMs} ms`);
      case 'expiry':
        if (this.#user && this.#deps.clock().getTime() < this.#user.validUntilMs) return this.#scheduleExpiry(this.#user);
        return this.close(CLOSE.unauthorized, 'token expired; send an auth frame with a fresh token before it expires');
      case 'terminate':
        return this.#socket.terminate();
      default: {
        const unreachable: never = this.#deadlineKind;
        throw new Error(`unknown deadline ${String(unreachable)}`);
      }
    }
  }

  /** Logs with the socket's request id; the child logger is made at the socket's first line that is written. */
  #log(level: LogLevel, fields: object, message: string): void {
    if (!this.#deps.logger.isLevelEnabled(level)) return;
    this.#logger ??= this.#deps.logger.child({ socket_request_id: this.#trace.requestId });
    this.#logger[level](fields, message);
  }

  #received(data: RawData, isBinary: boolean): void {
    this.#alive = true;
    const text = isBinary ? null : Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8');
    if (this.#inFlight >= MAX_FRAMES_IN_FLIGHT) {
      const requestId = text === null ? undefined : requestIdOf(text);
      this.#answerError(requestId, new GatewayError('rate_limited', `more than ${MAX_FRAMES_IN_FLIGHT} frames in flight; wait for answers`));
      return;
    }
    this.#inFlight++;
    const arrivedDraining = this.#draining;
    void this.#enqueue(
      async () => {
        // Once the server closed this socket (shutdown, slow reader, error), frames still waiting are not
        // handled: no answer could reach the client, which retries them (by client_msg_id) on reconnect.
        if (this.#closed) return;
        if (text === null) return this.#answerError(undefined, new GatewayError('invalid_input', 'frames must be JSON text, not binary'));
        if (arrivedDraining) return this.#answerError(requestIdOf(text), new GatewayError('unavailable', 'server restarting: send this again once reconnected'));
        return this.#onText(text);
      },
      undefined,
      'socket frame handling',
    ).finally(() => {
      this.#inFlight--;
    });
  }

  #socketClosed(): void {
    this.#closed = true;
    this.#deps.deadlines.clear(this.#deadline);
    if (this.#registered && this.#user) this.#deps.registry.remove(this.#user.userId, this);
    this.#registered = false;
    this.#releaseLease();
    this.#deps.onClosed?.(this);
  }

  #releaseLease(): void {
    if (this.#lease) this.#deps.leases.release(this.#lease);
    this.#lease = null;
  }

  #closeSlowReader(): void {
    this.#log('warn', { userId: this.#user?.userId, buffered: this.#socket.bufferedAmount }, 'send queue full; closing slow socket');
    this.close(CLOSE.slowConsumer, 'send queue full: the client does not read fast enough');
    // Closed: the token's expiry no longer matters, so this deadline takes its place.
    this.#deadlineKind = 'terminate';
    this.#deps.deadlines.set(this.#deadline, TERMINATE_AFTER_MS);
  }

  #write(text: string, patient = false): void {
    if (this.#closed) return;
    if (!this.write(text, { patient })) this.#closeSlowReader();
  }

  #sendFrame(frame: object): void {
    this.#write(JSON.stringify(frame));
  }

  /** Writes what the gate returned, in order. @returns how many catch-up frames and resyncs it held. */
  #send(outgoing: readonly Outgoing[]): Recovery {
    let replayed = 0;
    let resyncRequired = false;
    for (const item of outgoing) {
      if (item.kind === 'frame') {
        this.#write(item.text, item.catchUp);
        if (item.catchUp) replayed++;
      } else {
        this.#write(JSON.stringify(serverFrames.resyncRequired(this.#deps.clock(), item.reason)), true);
        resyncRequired = true;
      }
    }
    return { replayed, resyncRequired };
  }

  #scheduleExpiry(current: AuthenticatedUser): void {
    // Once closed, expiry would close it again: nothing to do (and a slow reader's cut-off must stay).
    if (this.#closed) return;
    this.#deps.deadlines.clear(this.#deadline);
    const delay = current.validUntilMs - this.#deps.clock().getTime();
    if (delay <= 0) return this.close(CLOSE.unauthorized, 'token expired');
    this.#deadlineKind = 'expiry';
    this.#deps.deadlines.set(this.#deadline, Math.min(delay, MAX_TIMER_MS));
  }

  /** The horizon now, or null (logged) when the database does not answer in time. */
  async #readHorizon(userId: number): Promise<FeedPosition | null> {
    try {
      const horizon = await withDeadline(this.#deps.feedHorizon(), HORIZON_TIMEOUT_MS);
      if (horizon !== 'timed_out') return horizon;
      this.#log('warn', { userId }, 'reading the feed horizon timed out');
    } catch (error) {
      this.#log('warn', { err: error, userId }, 'could not read the feed horizon');
    }
    return null;
  }

  /**
   * The catch-up the gate asked for, bounded in time. A read that fails, times out or is too long is a
   * resync: the client refetches over REST, and the horizon read then is where a later recovery starts.
   */
  async #readCatchUp(userId: number, after: FeedPosition | null): Promise<CatchUpResult> {
    let result: Awaited<ReturnType<CatchUp>> | 'timed_out' | 'failed' | 'no_position' = 'no_position';
    if (after) {
      try {
        result = await withDeadline(this.#deps.catchUp(userId, after), CATCH_UP_TIMEOUT_MS);
      } catch (error) {
        this.#log('warn', { err: error, userId }, 'catch-up read failed');
        result = 'failed';
      }
    }
    if (typeof result === 'object') return result;
    if (result !== 'resync_required') this.#log('warn', { userId, why: result }, 'sending resync_required');
    const reason =
      result === 'resync_required'
        ? 'too many events to replay; refetch over REST'
        : 'missed frames cannot be replayed now; refetch over REST';
    return { resync: reason, horizon: await this.#readHorizon(userId) };
  }

  /**
   * A client's `resume` frame.
   * @throws GatewayError `rate_limited` or `invalid_cursor`; the socket stays as it was (live).
   */
  async #resume(userId: number, since: string): Promise<{ replayed: number; resync_required: boolean }> {
    await this.#deps.resumeLimiter.consume(userId);
    const begun = this.#gate.beginResume(since);
    if (begun === 'invalid_cursor') throw invalidCursor();
    const { replayed, resyncRequired } = this.#send(this.#gate.finishReplay(await this.#readCatchUp(userId, begun.after)));
    return { replayed, resync_required: resyncRequired };
  }

  /** After a NATS outage: replays what the subscription may have missed, once; nothing when not suspended. */
  async #recoverMissed(): Promise<Recovery> {
    if (this.#closed || !this.#user) return NOTHING_RECOVERED;
    const begun = this.#gate.beginRecovery();
    if (begun === 'none') return NOTHING_RECOVERED;
    const recovery = this.#send(this.#gate.finishReplay(await this.#readCatchUp(this.#user.userId, begun.after)));
    this.#log('debug', { userId: this.#user.userId, ...recovery }, 'replayed after a NATS reconnect');
    return recovery;
  }

  async #authenticated(current: AuthenticatedUser): Promise<void> {
    const deps = this.#deps;
    this.#user = current;
    // Replaces the auth timeout.
    this.#scheduleExpiry(current);
    // `?since=`: a replay, unless the cursor does not decode or the user is over the replay limit; then the
    // socket opens live from now, after an error (and a resync_required for the limit: the client did ask
    // for what it missed).
    let refused: unknown = null;
    let resuming: { readonly after: FeedPosition } | null = null;
    if (this.#since !== null) {
      try {
        await deps.resumeLimiter.consume(current.userId);
        const begun = this.#gate.beginResume(this.#since);
        if (begun === 'invalid_cursor') refused = invalidCursor();
        else resuming = begun;
      } catch (error) {
        refused = error;
      }
    }
    // Without a replay, a recovery after an outage starts from the horizon, taken before the socket is
    // registered for live frames, so every event committed after it opened sorts after it.
    const start = resuming === null ? await this.#readHorizon(current.userId) : null;
    if (this.#closed) return;
    if (!this.#lease) {
      const taken = await deps.leases.acquire(current.userId);
      if (taken === 'too_many') return this.close(CLOSE.tooManySockets, 'too many sockets for this user');
      this.#lease = taken;
      // Closed while the lease was taken: the close handler ran before it existed.
      if (this.#closed) return this.#releaseLease();
    }
    const added = await deps.registry.add(current.userId, this);
    if (this.#closed) {
      if (added === 'added') deps.registry.remove(current.userId, this);
      return;
    }
    if (added === 'too_many') return this.close(CLOSE.tooManySockets, 'too many sockets for this user');
    this.#registered = true;
    this.#log('debug', { userId: current.userId }, 'socket authenticated');
    this.#sendFrame(serverFrames.connected(deps.clock(), current.userId));
    if (resuming !== null) {
      this.#send(this.#gate.finishReplay(await this.#readCatchUp(current.userId, resuming.after)));
      return;
    }
    if (refused !== null) this.#answerError(undefined, refused);
    if (refused instanceof GatewayError && refused.code !== 'invalid_cursor') {
      this.#write(JSON.stringify(serverFrames.resyncRequired(deps.clock(), 'the missed frames were not replayed; refetch over REST')), true);
    }
    this.#send(this.#gate.open(start));
  }

  #answerError(requestId: RequestId | undefined, error: unknown, trace?: RequestTrace): void {
    const answer = describeError(error);
    if (answer.report) this.#log('error', { err: error, userId: this.#user?.userId, ...traceMetadata(trace) }, 'socket frame failed');
    this.#sendFrame(serverFrames.error(this.#deps.clock(), requestId, answer.wsCode, answer.message, answer.retryAfterSeconds));
  }

  async #handle(frame: ClientFrame, current: AuthenticatedUser, trace: RequestTrace): Promise<unknown> {
    const deps = this.#deps;
    const { userId } = current;
    switch (frame.type) {
      case 'auth': {
        const refreshed = await deps.verifyToken(frame.token);
        if (refreshed.userId !== userId) throw new GatewayError('unauthorized', 'token is for another user');
        this.#user = refreshed;
        this.#scheduleExpiry(refreshed);
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
        if (forwarded) deps.publish(other, serverFrames.typing(deps.clock(), frame.conversation_id, userId, frame.is_typing));
        return { forwarded };
      }
      case 'resume':
        return this.#resume(userId, frame.since);
      case 'ping':
        this.#sendFrame(serverFrames.pong(deps.clock(), frame.request_id));
        return NO_ACK;
      default: {
        const unreachable: never = frame;
        throw new Error(`unhandled frame ${String(unreachable)}`);
      }
    }
  }

  /** The first frame of a socket without upgrade-time auth must be a valid `auth` frame. */
  async #authenticateFirstFrame(text: string): Promise<void> {
    const parsed = parseClientFrame(text);
    if (!parsed.ok || parsed.frame.type !== 'auth') {
      return this.close(CLOSE.unauthorized, 'authenticate first: {"type":"auth","token":"<JWT>"}');
    }
    let current: AuthenticatedUser;
    try {
      current = await this.#deps.verifyToken(parsed.frame.token);
    } catch (error) {
      // Only a refused token logs the user out (4401); the server failing to check one (Redis down) is 1011.
      if (error instanceof GatewayError && error.code === 'unauthorized') return this.close(CLOSE.unauthorized, error.message);
      this.#log('error', { err: error }, 'could not check a first-frame token');
      return this.close(CLOSE.internalError, 'cannot check tokens right now; retry shortly');
    }
    if (this.#closed) return;
    await this.#authenticated(current);
    if (parsed.frame.request_id !== undefined) {
      this.#sendFrame(serverFrames.ack(this.#deps.clock(), parsed.frame.request_id, { user_id: current.userId }));
    }
  }

  async #onText(text: string): Promise<void> {
    if (this.#closed) return;
    if (!this.#user) return this.#authenticateFirstFrame(text);
    const parsed = parseClientFrame(text);
    if (!parsed.ok) return this.#answerError(parsed.requestId, parsed.error);
    const { frame } = parsed;
    const trace = frameTrace(frame.request_id, this.#trace, newUlid);
    try {
      const data = await this.#handle(frame, this.#user, trace);
      if (data !== NO_ACK && frame.request_id !== undefined) this.#sendFrame(serverFrames.ack(this.#deps.clock(), frame.request_id, data));
    } catch (error) {
      this.#answerError(frame.request_id, error, trace);
    }
  }

  /** Runs `task` after everything queued; a failure closes the socket with 1011. */
  #enqueue<T>(task: () => Promise<T>, failed: T, what: string): Promise<T> {
    const run = (this.#queue ?? Promise.resolve()).then(task).catch((error: unknown) => {
      this.#log('error', { err: error, userId: this.#user?.userId }, `${what} failed`);
      this.close(CLOSE.internalError, 'internal error');
      return failed;
    });
    const tail: Promise<void> = run.then(() => {
      // The last one queued: an idle socket keeps no promise.
      if (this.#queue === tail) this.#queue = null;
    });
    this.#queue = tail;
    return run;
  }
}

const invalidCursor = () => new GatewayError('invalid_cursor', 'since: not a cursor this server issued; live frames continue from now');
