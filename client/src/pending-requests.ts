import { ChatError, isRetryableCode } from './chat-error.js';
import type { ClientFrame } from './frames.js';

/**
 * Client frames waiting for their answer (`ack` or `error` with the same `request_id`). Pure bookkeeping:
 * it builds the frames to write and settles promises; the client writes the frames and runs the timers.
 *
 * Each attempt gets its own `request_id`, so an answer is matched to the attempt it answers; what is sent
 * again is the same frame, so a send keeps its `client_msg_id` across every attempt and the server stores
 * the message once. A request is `queued` (to be written when the socket is online), `inflight` (written,
 * unanswered) or `waiting` (refused for a reason that passes, until its retry time).
 *
 * - A lost socket puts `inflight` and `waiting` requests back to `queued` when they survive a reconnect (sends, reads);
 *   the others are rejected (typing: a stale indicator is worse than none; auth: the next socket
 *   authenticates with its own token).
 * - An `error` answer with a passing code (`unavailable`, `rate_limited`, ...) makes the request `waiting`;
 *   any other code rejects it with a ChatError of that code.
 */

/** `auth`: a token refresh on the open socket, pointless on the next one (it authenticates with its own). */
export type RequestKind = 'send' | 'read' | 'typing' | 'auth';

type Entry = {
  readonly kind: RequestKind;
  readonly frame: (requestId: string) => ClientFrame;
  readonly resolve: (data: unknown) => void;
  readonly reject: (error: ChatError) => void;
  status: 'queued' | 'inflight' | 'waiting';
  requestId: string | null;
  /** Attempts answered with a passing error: the exponent of the retry wait. */
  refusals: number;
};

const survivesReconnect = (kind: RequestKind): boolean => kind === 'send' || kind === 'read';

export type ErrorOutcome = { readonly handled: false } | { readonly handled: true; readonly retry?: { readonly token: object; readonly refusals: number } };

export class PendingRequests {
  readonly #entries: Entry[] = [];
  readonly #newRequestId: () => string;

  constructor(newRequestId: () => string) {
    this.#newRequestId = newRequestId;
  }

  get size(): number {
    return this.#entries.length;
  }

  add(kind: RequestKind, frame: (requestId: string) => ClientFrame): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.#entries.push({ kind, frame, resolve, reject, status: 'queued', requestId: null, refusals: 0 });
    });
  }

  /** The frames to write now, oldest first: every `queued` request, each with a new `request_id`; they become `inflight`. */
  takeFramesToSend(): ClientFrame[] {
    const frames: ClientFrame[] = [];
    for (const entry of this.#entries) {
      if (entry.status !== 'queued') continue;
      entry.requestId = this.#newRequestId();
      entry.status = 'inflight';
      frames.push(entry.frame(entry.requestId));
    }
    return frames;
  }

  /** Resolves the request this ack answers with the ack's `data`; false when it answers none of ours. */
  onAck(requestId: string | number, data: unknown): boolean {
    const index = this.#entries.findIndex((entry) => entry.status === 'inflight' && entry.requestId === String(requestId));
    const [entry] = index < 0 ? [] : this.#entries.splice(index, 1);
    entry?.resolve(data);
    return entry !== undefined;
  }

  /**
   * An `error` frame with a `request_id`. A passing code leaves the request `waiting` and returns a token
   * for `retry` once its wait is over; another code rejects it.
   */
  onError(requestId: string | number, code: string, message: string): ErrorOutcome {
    const entry = this.#entries.find((candidate) => candidate.status === 'inflight' && candidate.requestId === String(requestId));
    if (!entry) return { handled: false };
    if (isRetryableCode(code)) {
      entry.status = 'waiting';
      entry.requestId = null;
      entry.refusals += 1;
      return { handled: true, retry: { token: entry, refusals: entry.refusals } };
    }
    this.#entries.splice(this.#entries.indexOf(entry), 1);
    entry.reject(new ChatError(code, message));
    return { handled: true };
  }

  /** A `waiting` request's wait is over: it is `queued` again (if it is still pending). */
  retry(token: object): void {
    const entry = this.#entries.find((candidate) => candidate === token);
    if (entry?.status === 'waiting') entry.status = 'queued';
  }

  /**
   * The socket is gone: unanswered requests that survive a reconnect are queued again, and so are those
   * waiting out a refusal (a draining gateway's `unavailable` means "send it again once reconnected"), so
   * the next socket gets them in the order they were made; the others are rejected.
   */
  onOffline(): void {
    for (const entry of [...this.#entries]) {
      if (entry.status === 'queued') continue;
      if (survivesReconnect(entry.kind)) {
        entry.status = 'queued';
        entry.requestId = null;
      } else {
        this.#entries.splice(this.#entries.indexOf(entry), 1);
        entry.reject(new ChatError('disconnected', 'the socket closed before the server answered'));
      }
    }
  }

  rejectAll(error: ChatError): void {
    for (const entry of this.#entries.splice(0)) entry.reject(error);
  }
}
