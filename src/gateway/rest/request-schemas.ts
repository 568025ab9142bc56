import { z } from 'zod';
import {
  DEFAULT_CONVERSATION_PAGE_SIZE,
  DEFAULT_PAGE_SIZE,
  MAX_CONVERSATION_PAGE_SIZE,
  MAX_PAGE_SIZE,
  type ConversationPage,
  type MessagePage,
} from '../../projections/conversation/queries.js';
import { GatewayError } from '../errors.js';

/** zod schemas of REST inputs; a failure is a GatewayError `invalid_input` naming the field. */

export const userId = z.number({ error: 'must be an integer user id' }).int('must be an integer user id').positive('must be positive').max(Number.MAX_SAFE_INTEGER);

export const conversationId = z.string().min(1).max(64);

/**
 * Any string here: the send command's rule (`assertValidClientMsgId`: 1 to 128 code points, no control
 * characters) refuses the others as `invalid_client_msg_id`, the code the contract gives them.
 */
export const clientMsgId = z.string({ error: 'must be a string' });

export const startConversationBody = z.object({ user_id: userId });

export const sendMessageBody = z.object({
  conversation_id: conversationId,
  message: z.string({ error: 'must be a string' }),
  // null is the same as absent, as a client serialising an unset field may send it.
  client_msg_id: clientMsgId.nullish(),
});

const digits = (field: string) => z.string().regex(/^[0-9]{1,9}$/, `${field} must be a non-negative integer`).transform(Number);

const pageQuery = z.object({
  limit: digits('limit')
    .pipe(z.number().int().min(1, `limit must be between 1 and ${MAX_PAGE_SIZE}`).max(MAX_PAGE_SIZE, `limit must be between 1 and ${MAX_PAGE_SIZE}`))
    .optional(),
  offset: digits('offset').optional(),
  before: z.string().min(1, 'before must be a message id').max(64).optional(),
});

export function parsePageQuery(query: Record<string, string>): MessagePage {
  const { limit = DEFAULT_PAGE_SIZE, offset, before } = parseInput(pageQuery, query);
  if (before !== undefined) {
    if (offset !== undefined) throw new GatewayError('invalid_input', 'give either offset or before, not both');
    return { limit, before };
  }
  return { limit, offset: offset ?? 0 };
}

const conversationPageQuery = z.object({
  limit: digits('limit')
    .pipe(
      z
        .number()
        .int()
        .min(1, `limit must be between 1 and ${MAX_CONVERSATION_PAGE_SIZE}`)
        .max(MAX_CONVERSATION_PAGE_SIZE, `limit must be between 1 and ${MAX_CONVERSATION_PAGE_SIZE}`),
    )
    .optional(),
  before: z.string().min(1, 'before must be a conversation id').max(64).optional(),
});

export function parseConversationPageQuery(query: Record<string, string>): ConversationPage {
  const { limit = DEFAULT_CONVERSATION_PAGE_SIZE, before } = parseInput(conversationPageQuery, query);
  return before === undefined ? { limit } : { limit, before };
}

/** @throws GatewayError `invalid_input` whose message names the first bad field. */
export function parseInput<S extends z.ZodType>(schema: S, input: unknown): z.infer<S> {
  const parsed = schema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new GatewayError('invalid_input', describeIssues(parsed.error));
}

export function describeIssues(error: z.ZodError): string {
  const [issue] = error.issues;
  if (!issue) return 'invalid input';
  const path = issue.path.map(String).join('.');
  if (issue.code === 'invalid_type' && issue.input === undefined) return `${path} is required`;
  return path ? `${path}: ${issue.message}` : issue.message;
}
