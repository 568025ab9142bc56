import { z } from 'zod';
import { GatewayError } from '../errors.js';
import { clientMsgId, conversationId, describeIssues } from '../rest/request-schemas.js';

/** zod schemas of every frame a client may send; anything else is answered with an `error` frame. */

const requestId = z.union([z.string().max(128), z.number().finite()]).optional();

const frameSchemas = {
  auth: z.object({ type: z.literal('auth'), request_id: requestId, token: z.string().min(1).max(8_192) }),
  send_message: z.object({
    type: z.literal('send_message'),
    request_id: requestId,
    conversation_id: conversationId,
    content: z.string({ error: 'must be a string' }),
    client_msg_id: clientMsgId.nullish(),
  }),
  join_conversation: z.object({ type: z.literal('join_conversation'), request_id: requestId, conversation_id: conversationId }),
  typing: z.object({
    type: z.literal('typing'),
    request_id: requestId,
    conversation_id: conversationId,
    is_typing: z.boolean({ error: 'must be true or false' }),
  }),
  read: z.object({ type: z.literal('read'), request_id: requestId, conversation_id: conversationId }),
  resume: z.object({ type: z.literal('resume'), request_id: requestId, since: z.string().min(1).max(256) }),
  ping: z.object({ type: z.literal('ping'), request_id: requestId }),
} as const;

export type ClientFrameType = keyof typeof frameSchemas;
export type ClientFrame = { [K in ClientFrameType]: z.infer<(typeof frameSchemas)[K]> }[ClientFrameType];
export type RequestId = string | number;

const isFrameType = (type: string): type is ClientFrameType => Object.hasOwn(frameSchemas, type);

const requestIdIn = (record: Record<string, unknown>): RequestId | undefined => {
  const id = requestId.safeParse(record['request_id']);
  return id.success ? id.data : undefined;
};

/** The `request_id` of a frame that is not handled (refused for overload), so its answer can carry it. */
export function requestIdOf(text: string): RequestId | undefined {
  try {
    const json: unknown = JSON.parse(text);
    return typeof json === 'object' && json !== null && !Array.isArray(json) ? requestIdIn(json as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

export type ParsedFrame =
  | { readonly ok: true; readonly frame: ClientFrame }
  | { readonly ok: false; readonly error: GatewayError; readonly requestId: RequestId | undefined };

/**
 * Parses one text frame. A failure carries the frame's `request_id` whenever one could be read, so that the
 * client can match the `error` to its request even when the rest of the frame is wrong.
 */
export function parseClientFrame(text: string): ParsedFrame {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, error: new GatewayError('invalid_json', 'frame is not valid JSON'), requestId: undefined };
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, error: new GatewayError('invalid_input', 'frame must be a JSON object'), requestId: undefined };
  }
  const record = json as Record<string, unknown>;
  const echo = requestIdIn(record);
  const type = record['type'];
  if (typeof type !== 'string') {
    return { ok: false, error: new GatewayError('invalid_input', 'type is required'), requestId: echo };
  }
  if (!isFrameType(type)) {
    return { ok: false, error: new GatewayError('unknown_type', `unknown frame type "${type.slice(0, 64)}"`), requestId: echo };
  }
  const parsed = frameSchemas[type].safeParse(json);
  if (!parsed.success) {
    return { ok: false, error: new GatewayError('invalid_input', describeIssues(parsed.error, json)), requestId: echo };
  }
  return { ok: true, frame: parsed.data };
}
