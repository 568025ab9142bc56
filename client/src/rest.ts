import { ChatError } from './chat-error.js';
import type { Conversation, Message, Presence } from './frames.js';
import type { TokenProvider } from './token-provider.js';

/** Every REST route of the chat API (docs/api.md, docs/openapi.yaml), typed. Each call asks the token provider for the token. */
export interface ChatRest {
  listConversations(page?: { limit?: number; before?: string }): Promise<Conversation[]>;
  getConversation(id: string): Promise<Conversation>;
  /** `created` is false when the pair already had this conversation (200 rather than 201). */
  startConversation(userId: number): Promise<{ conversation: Conversation; created: boolean }>;
  /** Newest first; either `offset` or `before` (a message id). */
  listMessages(id: string, page?: { limit?: number; offset?: number; before?: string }): Promise<Message[]>;
  /** `created` is false when `clientMsgId` was already used by this sender: `message` is the original. */
  sendMessage(conversationId: string, message: string, clientMsgId?: string): Promise<{ message: Message; created: boolean }>;
  markRead(id: string): Promise<void>;
  block(id: string): Promise<Conversation>;
  unblock(id: string): Promise<Conversation>;
  deleteMessage(id: string): Promise<{ id: string; conv_id: string; deleted_at: string }>;
  presence(userIds: number[]): Promise<Presence[]>;
}

export const REST_PREFIX = '/api/v1/chat';

type Answer<T> = { readonly status: number; readonly data: T };

const segment = (id: string): string => encodeURIComponent(id);

function query(parameters: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(parameters)) if (value !== undefined) search.set(name, String(value));
  const text = search.toString();
  return text === '' ? '' : `?${text}`;
}

/** Seconds (the only form the gateway sends) or an HTTP date, in milliseconds. */
function retryAfterMs(header: string | null, nowMs: number): number | undefined {
  if (header === null) return undefined;
  const seconds = Number(header);
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000;
  const date = Date.parse(header);
  return Number.isNaN(date) ? undefined : Math.max(0, date - nowMs);
}

export function createRest(options: { readonly baseUrl: string; readonly getToken: TokenProvider; readonly fetch: typeof fetch }): ChatRest {
  const root = options.baseUrl.replace(/\/+$/, '') + REST_PREFIX;

  async function call<T>(method: string, path: string, body?: unknown): Promise<Answer<T>> {
    const token = await options.getToken();
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const init: RequestInit = { method, headers };
    if (body !== undefined) init.body = JSON.stringify(body);
    let response: Response;
    try {
      response = await options.fetch(root + path, init);
    } catch (error) {
      throw new ChatError('network', `${method} ${path}: ${error instanceof Error ? error.message : String(error)}`);
    }
    let envelope: unknown;
    try {
      envelope = await response.json();
    } catch {
      throw new ChatError('invalid_response', `${method} ${path}: the answer (${response.status}) is not JSON`, { status: response.status });
    }
    const fields = typeof envelope === 'object' && envelope !== null ? (envelope as Record<string, unknown>) : {};
    if (!response.ok || fields['success'] !== true) {
      const code = typeof fields['code'] === 'string' ? fields['code'] : `http_${response.status}`;
      const message = typeof fields['error'] === 'string' ? fields['error'] : `${method} ${path} answered ${response.status}`;
      const retryAfter = retryAfterMs(response.headers.get('retry-after'), Date.now());
      throw new ChatError(code, message, { status: response.status, ...(retryAfter !== undefined && { retryAfterMs: retryAfter }) });
    }
    return { status: response.status, data: fields['data'] as T };
  }

  const data = async <T>(answer: Promise<Answer<T>>): Promise<T> => (await answer).data;

  return {
    listConversations: (page = {}) => data(call<Conversation[]>('GET', `/conversations${query({ limit: page.limit, before: page.before })}`)),
    getConversation: (id) => data(call<Conversation>('GET', `/conversations/${segment(id)}`)),
    async startConversation(userId) {
      const answer = await call<Conversation>('POST', '/conversations', { user_id: userId });
      return { conversation: answer.data, created: answer.status === 201 };
    },
    listMessages: (id, page = {}) =>
      data(call<Message[]>('GET', `/conversations/${segment(id)}/messages${query({ limit: page.limit, offset: page.offset, before: page.before })}`)),
    async sendMessage(conversationId, message, clientMsgId) {
      const body = { conversation_id: conversationId, message, ...(clientMsgId !== undefined && { client_msg_id: clientMsgId }) };
      const answer = await call<Message>('POST', '/messages', body);
      return { message: answer.data, created: answer.status === 201 };
    },
    async markRead(id) {
      await call('PUT', `/conversations/${segment(id)}/read`);
    },
    block: (id) => data(call<Conversation>('POST', `/conversations/${segment(id)}/block`)),
    unblock: (id) => data(call<Conversation>('DELETE', `/conversations/${segment(id)}/block`)),
    deleteMessage: (id) => data(call<{ id: string; conv_id: string; deleted_at: string }>('DELETE', `/messages/${segment(id)}`)),
    presence: (userIds) => data(call<Presence[]>('GET', `/presence${query({ user_ids: userIds.join(',') })}`)),
  };
}
