import { backoffDelay, DEFAULT_BACKOFF, type BackoffSettings } from './backoff.js';
import { ChatError } from './chat-error.js';
import { initialState, transition, type ConnectionState, type Effect, type MachineEvent, type MachineState } from './connection-machine.js';
import { Emitter } from './emitter.js';
import {
  isEventFrame,
  parseServerFrame,
  type ClientFrame,
  type ConversationBlockedFrame,
  type ConversationCreatedFrame,
  type ConversationRemovedFrame,
  type ConversationRestoredFrame,
  type ConversationUnblockedFrame,
  type EventFrame,
  type Message,
  type MessageDeletedFrame,
  type MessagesReadFrame,
  type NewMessageFrame,
  type PresenceFrame,
  type ResyncRequiredFrame,
  type ServerFrame,
  type TypingFrame,
} from './frames.js';
import { randomId } from './ids.js';
import { PendingRequests } from './pending-requests.js';
import { createRest, REST_PREFIX, type ChatRest } from './rest.js';
import { SeqGuard } from './seq-guard.js';
import { refreshDelayMs } from './token-refresh.js';
import type { TokenProvider } from './token-provider.js';

/** Where the last event frame's cursor is kept across page loads (localStorage, say). */
export type CursorStore = { load(): string | null; save(cursor: string): void; clear?(): void };

export interface ChatClientOptions {
  /** 'http://host:8004': REST at /api/v1/chat, the socket at ws(s)://host:8004/api/v1/chat/ws. */
  baseUrl: string;
  getToken: TokenProvider;
  /** Default 60_000: an `auth` frame with a token asked again of getToken goes out this long before `exp`. */
  refreshBeforeExpiryMs?: number;
  /** Jittered exponential reconnect waits; defaults 500 / 30_000. */
  backoff?: { initialMs?: number; maxMs?: number };
  /**
   * A `ping` every `intervalMs` (default 20_000); a socket that has sent no frame at all for `timeoutMs`
   * (default 45_000) is taken for dead and replaced.
   */
  keepalive?: { intervalMs?: number; timeoutMs?: number };
  cursorStore?: CursorStore;
  /** Injectable (tests, Node); default globalThis.WebSocket. */
  WebSocket?: typeof WebSocket;
  /** Injectable; default globalThis.fetch. */
  fetch?: typeof fetch;
  /** Injectable for tests; default Math.random. */
  random?: () => number;
}

export interface ChatEvents {
  state: ConnectionState;
  connected: { user_id: number };
  new_message: NewMessageFrame;
  messages_read: MessagesReadFrame;
  conversation_created: ConversationCreatedFrame;
  conversation_blocked: ConversationBlockedFrame;
  conversation_removed: ConversationRemovedFrame;
  conversation_unblocked: ConversationUnblockedFrame;
  conversation_restored: ConversationRestoredFrame;
  message_deleted: MessageDeletedFrame;
  typing: TypingFrame;
  presence: PresenceFrame;
  /** The catch-up was too long to replay: refetch over REST; live frames follow. */
  resync_required: ResyncRequiredFrame;
  /** Error frames that answer no pending request, `invalid_cursor`, a final close, a listener that threw. */
  error: ChatError;
}

/** The wait before a request refused with a passing code (`unavailable`, `rate_limited`) is sent again. */
const REFUSED_RETRY: BackoffSettings = { initialMs: 1_000, maxMs: 30_000 };

/** The server's `retry_after` in milliseconds, at most REFUSED_RETRY's longest wait; 0 without a sane one. */
const retryWait = (seconds: number | undefined): number =>
  typeof seconds === 'number' && Number.isFinite(seconds) && seconds > 0 ? Math.min(seconds * 1_000, REFUSED_RETRY.maxMs) : 0;

type Socket = WebSocket;

/**
 * The chat over one WebSocket, kept open: first-frame `auth`, token refresh before expiry, reconnect with
 * jittered backoff resuming from the last event frame's cursor (`?since=`), event frames deduplicated by
 * `seq` per conversation, sends retried under one `client_msg_id` until the server answers. The life cycle
 * is connection-machine.ts; this class does its effects.
 */
export class ChatClient {
  readonly rest: ChatRest;
  readonly #options: ChatClientOptions;
  readonly #WebSocket: typeof WebSocket;
  readonly #backoff: BackoffSettings;
  readonly #refreshBeforeMs: number;
  readonly #pingIntervalMs: number;
  readonly #stallTimeoutMs: number;
  readonly #random: () => number;
  readonly #events: Emitter<ChatEvents>;
  readonly #guard = new SeqGuard();
  readonly #pending = new PendingRequests(randomId);
  #machine: MachineState = initialState;
  #socket: Socket | null = null;
  /** The token the current socket authenticated (or last refreshed) with. */
  #token: string | null = null;
  #cursor: string | null;
  #userId: number | null = null;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #pingTimer: ReturnType<typeof setInterval> | undefined;
  #stallTimer: ReturnType<typeof setTimeout> | undefined;
  #refreshTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #retryTimers = new Set<ReturnType<typeof setTimeout>>();

  constructor(options: ChatClientOptions) {
    this.#options = options;
    const WebSocketClass = options.WebSocket ?? globalThis.WebSocket;
    const fetchFunction = options.fetch ?? globalThis.fetch?.bind(globalThis);
    if (WebSocketClass === undefined) throw new TypeError('no WebSocket: pass options.WebSocket');
    if (fetchFunction === undefined) throw new TypeError('no fetch: pass options.fetch');
    this.#WebSocket = WebSocketClass;
    this.#backoff = { initialMs: options.backoff?.initialMs ?? DEFAULT_BACKOFF.initialMs, maxMs: options.backoff?.maxMs ?? DEFAULT_BACKOFF.maxMs };
    this.#refreshBeforeMs = options.refreshBeforeExpiryMs ?? 60_000;
    this.#pingIntervalMs = options.keepalive?.intervalMs ?? 20_000;
    this.#stallTimeoutMs = options.keepalive?.timeoutMs ?? 45_000;
    this.#random = options.random ?? Math.random;
    this.#events = new Emitter<ChatEvents>((error) =>
      queueMicrotask(() => {
        throw error;
      }),
    );
    this.#cursor = options.cursorStore?.load() ?? null;
    this.rest = createRest({ baseUrl: options.baseUrl, getToken: options.getToken, fetch: fetchFunction });
  }

  get state(): ConnectionState {
    return this.#machine.phase;
  }

  /** The cursor of the last event frame received: where the next connection resumes. */
  get cursor(): string | null {
    return this.#cursor;
  }

  /** The user id the server authenticated, from the first `connected` frame. */
  get userId(): number | null {
    return this.#userId;
  }

  on<K extends keyof ChatEvents>(event: K, listener: (payload: ChatEvents[K]) => void): () => void {
    return this.#events.on(event, listener);
  }

  /** Opens the socket (and keeps it open until close()). */
  connect(): void {
    this.#dispatch({ type: 'connect' });
  }

  /** Closes for good: no reconnect; pending sends are rejected with code `closed`. */
  close(): void {
    this.#dispatch({ type: 'close' });
    this.#pending.rejectAll(new ChatError('closed', 'the client was closed'));
  }

  /**
   * Sends a message over the socket; queued while offline. One `client_msg_id` (given, or generated) for
   * every attempt, so the server stores it once however often it is sent. Resolves with the Message of the
   * ack (the original when a retry finds it stored); rejects with a ChatError on a final refusal
   * (`too_long`, `not_found`, `blocked`, `invalid_*`, ...) or close().
   */
  async sendMessage(conversationId: string, content: string, options: { clientMsgId?: string } = {}): Promise<Message> {
    const clientMsgId = options.clientMsgId ?? randomId();
    const data = await this.#request(
      'send',
      (requestId) => ({ type: 'send_message', conversation_id: conversationId, content, client_msg_id: clientMsgId, request_id: requestId }),
      `send:${conversationId}`,
    );
    return data as Message;
  }

  /** A typing indicator; only while open (rejects with `not_connected` otherwise: it would be stale). */
  /** @returns false when the server held the signal back (at most two a second are forwarded). */
  async typing(conversationId: string, isTyping: boolean): Promise<boolean> {
    if (this.state !== 'open') throw new ChatError('not_connected', 'typing needs an open socket');
    const answer = await this.#request('typing', (requestId) => ({ type: 'typing', conversation_id: conversationId, is_typing: isTyping, request_id: requestId }));
    return (answer as { forwarded?: unknown } | undefined)?.forwarded !== false;
  }

  /** Marks the conversation read; queued while offline. */
  async markRead(conversationId: string): Promise<void> {
    await this.#request('read', (requestId) => ({ type: 'read', conversation_id: conversationId, request_id: requestId }));
  }

  #request(kind: 'send' | 'read' | 'typing' | 'auth', frame: (requestId: string) => ClientFrame, orderKey?: string): Promise<unknown> {
    if (this.state === 'closed') return Promise.reject(new ChatError('closed', 'the client was closed'));
    const answer = this.#pending.add(kind, frame, orderKey);
    this.#flush();
    return answer;
  }

  #dispatch(event: MachineEvent): void {
    const before = this.#machine.phase;
    const next = transition(this.#machine, event);
    this.#machine = next.state;
    if (next.state.phase !== before) this.#events.emit('state', next.state.phase);
    for (const effect of next.effects) this.#run(effect);
  }

  #run(effect: Effect): void {
    switch (effect.type) {
      case 'openSocket':
        void this.#openSocket();
        return;
      case 'sendAuth':
        if (this.#token !== null) this.#write({ type: 'auth', token: this.#token });
        return;
      case 'discardSocket':
        this.#discardSocket();
        return;
      case 'scheduleRetry':
        clearTimeout(this.#retryTimer);
        this.#retryTimer = setTimeout(() => this.#dispatch({ type: 'retryDue' }), backoffDelay(effect.attempt, this.#backoff, this.#random));
        return;
      case 'cancelRetry':
        clearTimeout(this.#retryTimer);
        for (const timer of this.#retryTimers) clearTimeout(timer);
        this.#retryTimers.clear();
        return;
      case 'goOnline':
        this.#pingTimer = setInterval(() => this.#write({ type: 'ping' }), this.#pingIntervalMs);
        this.#scheduleRefresh();
        this.#flush();
        return;
      case 'goOffline':
        clearInterval(this.#pingTimer);
        clearTimeout(this.#refreshTimer);
        this.#pending.onOffline();
        return;
      case 'fail': {
        const error = new ChatError(effect.code, effect.message);
        this.#events.emit('error', error);
        this.#pending.rejectAll(error);
        return;
      }
    }
  }

  async #openSocket(): Promise<void> {
    this.#discardSocket();
    let token: string;
    try {
      token = await this.#options.getToken();
    } catch (error) {
      this.#events.emit('error', new ChatError('token_unavailable', `getToken failed: ${error instanceof Error ? error.message : String(error)}`));
      this.#dispatch({ type: 'socketClosed', code: 1006, reason: 'no token' });
      return;
    }
    if (this.state !== 'connecting' && this.state !== 'reconnecting') return;
    this.#token = token;
    let socket: Socket;
    try {
      socket = new this.#WebSocket(this.#socketUrl());
    } catch (error) {
      this.#events.emit('error', new ChatError('network', `cannot open the socket: ${error instanceof Error ? error.message : String(error)}`));
      this.#dispatch({ type: 'socketClosed', code: 1006, reason: 'cannot open' });
      return;
    }
    this.#socket = socket;
    this.#armStallTimer();
    socket.onopen = () => {
      if (this.#socket === socket) this.#dispatch({ type: 'socketOpened' });
    };
    socket.onmessage = (event: { readonly data: unknown }) => {
      if (this.#socket !== socket || typeof event.data !== 'string') return;
      this.#armStallTimer();
      const frame = parseServerFrame(event.data);
      if (frame !== null) this.#onFrame(frame);
    };
    // A failed connection is reported by the close that follows; a handler must exist all the same, or
    // Node's `ws` throws the error event.
    socket.onerror = () => undefined;
    socket.onclose = (event: { readonly code: number; readonly reason: string }) => {
      if (this.#socket !== socket) return;
      this.#socket = null;
      clearTimeout(this.#stallTimer);
      this.#dispatch({ type: 'socketClosed', code: event.code, reason: event.reason });
    };
  }

  #socketUrl(): string {
    const url = new URL(this.#options.baseUrl);
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.pathname = `${url.pathname.replace(/\/+$/, '')}${REST_PREFIX}/ws`;
    url.search = '';
    if (this.#cursor !== null) url.searchParams.set('since', this.#cursor);
    return url.toString();
  }

  #discardSocket(): void {
    const socket = this.#socket;
    this.#socket = null;
    clearTimeout(this.#stallTimer);
    if (socket === null) return;
    socket.onopen = null;
    socket.onmessage = null;
    socket.onclose = null;
    socket.onerror = () => undefined;
    try {
      socket.close(1000, 'client closed');
    } catch {
      // Closing a socket still connecting may throw in some implementations; it is dropped either way.
    }
  }

  #armStallTimer(): void {
    clearTimeout(this.#stallTimer);
    this.#stallTimer = setTimeout(() => this.#dispatch({ type: 'stalled' }), this.#stallTimeoutMs);
  }

  #write(frame: ClientFrame): boolean {
    const socket = this.#socket;
    if (socket === null || socket.readyState !== 1) return false;
    socket.send(JSON.stringify(frame));
    return true;
  }

  /** Writes every queued request while the connection is open. */
  #flush(): void {
    if (this.state !== 'open') return;
    for (const frame of this.#pending.takeFramesToSend()) this.#write(frame);
  }

  #scheduleRefresh(): void {
    clearTimeout(this.#refreshTimer);
    if (this.#token === null) return;
    const delay = refreshDelayMs(this.#token, Date.now(), this.#refreshBeforeMs);
    if (delay === null) return;
    this.#refreshTimer = setTimeout(() => void this.#refresh(), delay);
  }

  async #refresh(): Promise<void> {
    let token: string;
    try {
      token = await this.#options.getToken();
    } catch (error) {
      this.#events.emit('error', new ChatError('token_unavailable', `getToken failed: ${error instanceof Error ? error.message : String(error)}`));
      this.#scheduleRefresh();
      return;
    }
    if (this.state !== 'open') return;
    try {
      await this.#request('auth', (requestId) => ({ type: 'auth', token, request_id: requestId }));
    } catch (error) {
      if (error instanceof ChatError && (error.code === 'disconnected' || error.code === 'closed')) return;
      this.#events.emit('error', error instanceof ChatError ? error : new ChatError('internal', String(error)));
      this.#scheduleRefresh();
      return;
    }
    this.#token = token;
    this.#scheduleRefresh();
  }

  #onFrame(frame: ServerFrame): void {
    if (isEventFrame(frame)) return this.#onEventFrame(frame);
    switch (frame.type) {
      case 'connected':
        this.#userId = frame.data.user_id;
        this.#dispatch({ type: 'connected' });
        this.#events.emit('connected', { user_id: frame.data.user_id });
        return;
      case 'typing':
        this.#events.emit('typing', frame);
        return;
      case 'presence':
        this.#events.emit('presence', frame);
        return;
      case 'resync_required':
        this.#events.emit('resync_required', frame);
        return;
      case 'ack':
        if (this.#pending.onAck(frame.request_id, frame.data)) this.#flush();
        return;
      case 'error':
        this.#onErrorFrame(frame.request_id, String(frame.data.code), String(frame.data.message), frame.data.retry_after);
        this.#flush();
        return;
      case 'pong':
        return;
    }
  }

  #onEventFrame(frame: EventFrame): void {
    if (!this.#guard.accept(frame.conversation_id, frame.seq)) return;
    this.#cursor = frame.cursor;
    this.#options.cursorStore?.save(frame.cursor);
    this.#emitEvent(frame);
  }

  #emitEvent(frame: EventFrame): void {
    switch (frame.type) {
      case 'new_message':
        return this.#events.emit('new_message', frame);
      case 'messages_read':
        return this.#events.emit('messages_read', frame);
      case 'conversation_created':
        return this.#events.emit('conversation_created', frame);
      case 'conversation_blocked':
        return this.#events.emit('conversation_blocked', frame);
      case 'conversation_removed':
        return this.#events.emit('conversation_removed', frame);
      case 'conversation_unblocked':
        return this.#events.emit('conversation_unblocked', frame);
      case 'conversation_restored':
        return this.#events.emit('conversation_restored', frame);
      case 'message_deleted':
        return this.#events.emit('message_deleted', frame);
    }
  }

  #onErrorFrame(requestId: string | number | undefined, code: string, message: string, retryAfterSeconds?: number): void {
    if (requestId !== undefined) {
      const outcome = this.#pending.onError(requestId, code, message);
      if (outcome.handled) {
        if (outcome.retry) {
          const { token, refusals } = outcome.retry;
          // The server's retry_after, when it says one, is the least wait; the backoff may wait longer.
          const delay = Math.max(backoffDelay(refusals - 1, REFUSED_RETRY, this.#random), retryWait(retryAfterSeconds));
          const timer = setTimeout(() => {
            this.#retryTimers.delete(timer);
            this.#pending.retry(token);
            this.#flush();
          }, delay);
          this.#retryTimers.add(timer);
        }
        return;
      }
    }
    if (code === 'invalid_cursor') {
      this.#cursor = null;
      this.#options.cursorStore?.clear?.();
    }
    this.#events.emit('error', new ChatError(code, message));
  }
}
