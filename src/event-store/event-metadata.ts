/**
 * What an event records of the request that caused it, in its `metadata` column: the request id and, when
 * the client sent one, its W3C `traceparent`. Every role that handles the event logs them with its id, so one
 * message can be followed from the gateway through the relay, the projector and the fan-out.
 */
export type RequestTrace = { readonly requestId: string; readonly traceparent?: string | undefined };

export type TraceFields = { readonly request_id?: string; readonly traceparent?: string };

/** The event metadata of a request: `{ request_id, traceparent? }`; nothing when there is no request. */
export function traceMetadata(trace: RequestTrace | undefined): TraceFields {
  if (!trace) return {};
  return { request_id: trace.requestId, ...(trace.traceparent !== undefined && { traceparent: trace.traceparent }) };
}

/** The trace fields of a stored event's metadata, for a log line; other keys and non-string values are left out. */
export function traceFieldsOf(metadata: Readonly<Record<string, unknown>>): TraceFields {
  const requestId = metadata['request_id'];
  const traceparent = metadata['traceparent'];
  return {
    ...(typeof requestId === 'string' && { request_id: requestId }),
    ...(typeof traceparent === 'string' && { traceparent }),
  };
}
