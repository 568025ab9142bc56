/** A refusal from the server (REST `code` or an `error` frame's `data.code`), or a failure of the client itself. */
export class ChatError extends Error {
  override readonly name = 'ChatError';
  readonly code: string;
  /** The HTTP status of a REST answer. */
  status?: number;
  /** From `Retry-After`, when the server said when to try again. */
  retryAfterMs?: number;

  constructor(code: string, message: string, details: { status?: number; retryAfterMs?: number } = {}) {
    super(message);
    this.code = code;
    if (details.status !== undefined) this.status = details.status;
    if (details.retryAfterMs !== undefined) this.retryAfterMs = details.retryAfterMs;
  }
}

/** Error frame codes after which the same frame may succeed later: the send is retried, not rejected. */
const RETRYABLE_CODES: ReadonlySet<string> = new Set(['unavailable', 'rate_limited', 'internal', 'read_model_behind']);

export const isRetryableCode = (code: string): boolean => RETRYABLE_CODES.has(code);
