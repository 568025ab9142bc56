import type { RequestTrace } from '../event-store/event-metadata.js';

export const REQUEST_ID_HEADER = 'X-Request-Id';
export const TRACEPARENT_HEADER = 'traceparent';

/** 1 to 128 characters that cannot break a log line, a header or a query: what a client's id must be. */
const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/** W3C Trace Context, version 00: `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, lowercase. */
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;

/** A client's request id when it is a sane value (a WS frame's numeric `request_id` counts), else null. */
export function parseRequestId(value: unknown): string | null {
  const text = typeof value === 'number' && Number.isFinite(value) ? String(value) : value;
  return typeof text === 'string' && REQUEST_ID.test(text) ? text : null;
}

/** A valid version-00 `traceparent` (neither id all zeros), else null: an invalid one is ignored. */
export function parseTraceparent(value: unknown): string | null {
  if (typeof value !== 'string') return null;
  const match = TRACEPARENT.exec(value);
  if (!match) return null;
  const [, traceId, parentId] = match;
  return /^0+$/.test(traceId!) || /^0+$/.test(parentId!) ? null : value;
}

/**
 * The trace of a REST request or a WebSocket upgrade: the client's `X-Request-Id` when it is sane, else a new
 * id (a bad one is replaced, never echoed or logged), and its `traceparent` when valid.
 */
export function requestTrace(
  headers: { readonly requestId: unknown; readonly traceparent: unknown },
  newId: () => string,
): RequestTrace {
  const traceparent = parseTraceparent(headers.traceparent);
  return { requestId: parseRequestId(headers.requestId) ?? newId(), ...(traceparent !== null && { traceparent }) };
}

/**
 * The trace of one WebSocket command frame: its own `request_id` when sane, else a new one; the
 * `traceparent` of the socket's upgrade request.
 */
export function frameTrace(frameRequestId: unknown, socket: RequestTrace, newId: () => string): RequestTrace {
  return {
    requestId: parseRequestId(frameRequestId) ?? newId(),
    ...(socket.traceparent !== undefined && { traceparent: socket.traceparent }),
  };
}
