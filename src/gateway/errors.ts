import { DomainError, type DomainErrorCode } from '../commands/domain-error.js';
import { isDatabaseUnreachable } from '../shared/database.js';

/**
 * The one place where failures become transport answers: a DomainError (from a command) or a GatewayError
 * (auth, validation, limits) maps to an HTTP status plus the seed's envelope, and to a WS `error` frame
 * code. Anything else is an internal error whose details never reach the client.
 */

export type GatewayErrorCode =
  | 'unauthorized'
  | 'invalid_json'
  /** A body, query or frame that is JSON but not of the expected shape. */
  | 'invalid_input'
  | 'unknown_type'
  | 'not_found'
  | 'rate_limited'
  | 'payload_too_large'
  /** A `since` / `resume` cursor that is not one of ours. */
  | 'invalid_cursor'
  /** The read tables did not reach the log in the query's time bound; the caller retries after `retryAfterSeconds`. */
  | 'read_model_behind'
  /**
   * A dependency needed to decide (Redis: revoked tokens, the rate limit) did not answer. Never `unauthorized`:
   * a client that sees 401 or 4401 logs its user out, and the token may well be fine.
   */
  | 'unavailable';

export class GatewayError extends Error {
  override readonly name = 'GatewayError';
  constructor(
    readonly code: GatewayErrorCode,
    message: string,
    /** For `rate_limited`, `read_model_behind` and `unavailable`: when the caller may try again. */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

/** The machine-readable codes clients see, in REST `code` and in WS `error` frames' `data.code`. */
export type ErrorCode =
  | Exclude<GatewayErrorCode, 'invalid_input'>
  | 'invalid_request'
  | 'invalid_frame'
  | Exclude<DomainErrorCode, 'not_found'>
  | 'internal';

type Mapping = { readonly status: number; readonly rest: ErrorCode; readonly ws: ErrorCode };

const GATEWAY: Record<GatewayErrorCode, Mapping> = {
  unauthorized: { status: 401, rest: 'unauthorized', ws: 'unauthorized' },
  invalid_json: { status: 400, rest: 'invalid_json', ws: 'invalid_json' },
  invalid_input: { status: 400, rest: 'invalid_request', ws: 'invalid_frame' },
  unknown_type: { status: 400, rest: 'invalid_request', ws: 'unknown_type' },
  not_found: { status: 404, rest: 'not_found', ws: 'not_found' },
  rate_limited: { status: 429, rest: 'rate_limited', ws: 'rate_limited' },
  payload_too_large: { status: 413, rest: 'payload_too_large', ws: 'invalid_frame' },
  invalid_cursor: { status: 400, rest: 'invalid_cursor', ws: 'invalid_cursor' },
  read_model_behind: { status: 503, rest: 'read_model_behind', ws: 'read_model_behind' },
  unavailable: { status: 503, rest: 'unavailable', ws: 'unavailable' },
};

const DOMAIN: Record<DomainErrorCode, Mapping> = {
  // Missing and forbidden are one answer: a stranger cannot learn that a conversation exists.
  not_found: { status: 404, rest: 'not_found', ws: 'not_found' },
  self_conversation: { status: 400, rest: 'self_conversation', ws: 'self_conversation' },
  conversation_exists: { status: 409, rest: 'conversation_exists', ws: 'conversation_exists' },
  blank_message: { status: 400, rest: 'blank_message', ws: 'blank_message' },
  too_long: { status: 400, rest: 'too_long', ws: 'too_long' },
  invalid_characters: { status: 400, rest: 'invalid_characters', ws: 'invalid_characters' },
  invalid_client_msg_id: { status: 400, rest: 'invalid_client_msg_id', ws: 'invalid_client_msg_id' },
  client_msg_id_conflict: { status: 409, rest: 'client_msg_id_conflict', ws: 'client_msg_id_conflict' },
  blocked: { status: 403, rest: 'blocked', ws: 'blocked' },
  forbidden: { status: 403, rest: 'forbidden', ws: 'forbidden' },
};

const INTERNAL: Mapping = { status: 500, rest: 'internal', ws: 'internal' };
const INTERNAL_MESSAGE = 'internal error';

export type ErrorAnswer = {
  readonly status: number;
  readonly restCode: ErrorCode;
  readonly wsCode: ErrorCode;
  readonly message: string;
  readonly retryAfterSeconds?: number;
  /** True for failures the caller logs: unexpected errors, and Postgres out of reach. */
  readonly report: boolean;
};

export function describeError(error: unknown): ErrorAnswer {
  if (error instanceof GatewayError) {
    const mapping = GATEWAY[error.code];
    return {
      status: mapping.status,
      restCode: mapping.rest,
      wsCode: mapping.ws,
      message: error.message,
      ...(error.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: error.retryAfterSeconds }),
      report: false,
    };
  }
  if (error instanceof DomainError) {
    const mapping = DOMAIN[error.code];
    return { status: mapping.status, restCode: mapping.rest, wsCode: mapping.ws, message: error.message, report: false };
  }
  if (isDatabaseUnreachable(error)) {
    // A restart or a failover: the client tries again (as for Redis: redis-unavailable.ts), not a 500.
    const mapping = GATEWAY.unavailable;
    return { status: mapping.status, restCode: mapping.rest, wsCode: mapping.ws, message: 'the database cannot be reached right now; try again', retryAfterSeconds: 1, report: true };
  }
  return { status: INTERNAL.status, restCode: INTERNAL.rest, wsCode: INTERNAL.ws, message: INTERNAL_MESSAGE, report: true };
}

/** The seed's failure envelope, plus the machine-readable code. */
export function errorEnvelope(answer: Pick<ErrorAnswer, 'message' | 'restCode'>): {
  success: false;
  error: string;
  code: ErrorCode;
} {
  return { success: false, error: answer.message, code: answer.restCode };
}

export const notFound = (what = 'conversation not found'): GatewayError => new GatewayError('not_found', what);
