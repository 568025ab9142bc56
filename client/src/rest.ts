import { ChatError } from './chat-error.js';
import type { Conversation, Message, Presence } from './frames.js';
import type { operations } from './openapi-types.js';
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

type OperationId = keyof operations;
type JsonOf<Response> = Response extends { content: { 'application/json': infer Body } } ? Body : never;
/** The `data` of an operation's success answer (200, else 201), as docs/openapi.yaml declares it. */
export type SuccessData<Id extends OperationId> = (
  operations[Id]['responses'] extends infer Responses
    ? 200 extends keyof Responses
      ? JsonOf<Responses[200]>
      : 201 extends keyof Responses
        ? JsonOf<Responses[201]>
        : never
    : never
) extends { data: infer Data }
  ? Data
  : never;
type QueryOf<Id extends OperationId> = NonNullable<operations[Id]['parameters']['query']>;
type BodyOf<Id extends OperationId> = operations[Id] extends { requestBody: { content: { 'application/json': infer Body } } } ? Body : never;

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

  /** One operation of the document, by its operationId: the body and the answer's data are typed from it. */
  const operation = <Id extends OperationId>(_id: Id, method: string, path: string, ...body: BodyOf<Id> extends never ? [] : [BodyOf<Id>]) =>
    call<SuccessData<Id>>(method, path, body[0]);

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

  const q = <Id extends OperationId>(_id: Id, parameters: { [K in keyof QueryOf<Id>]?: QueryOf<Id>[K] | undefined }): string =>
    query(parameters as Record<string, string | number | undefined>);

  return {
    listConversations: (page = {}) =>
      data(operation('listConversations', 'GET', `/conversations${q('listConversations', { limit: page.limit, before: page.before })}`)),
    getConversation: (id) => data(operation('getConversation', 'GET', `/conversations/${segment(id)}`)),
    async startConversation(userId) {
      const answer = await operation('startConversation', 'POST', '/conversations', { user_id: userId });
      return { conversation: answer.data, created: answer.status === 201 };
    },
    listMessages: (id, page = {}) =>
      data(
        operation(
          'listMessages',
          'GET',
          `/conversations/${segment(id)}/messages${q('listMessages', { limit: page.limit, offset: page.offset, before: page.before })}`,
        ),
      ),
    async sendMessage(conversationId, message, clientMsgId) {
      const body = { conversation_id: conversationId, message, ...(clientMsgId !== undefined && { client_msg_id: clientMsgId }) };
      const answer = await operation('sendMessage', 'POST', '/messages', body);
      return { message: answer.data, created: answer.status === 201 };
    },
    async markRead(id) {
      await operation('markRead', 'PUT', `/conversations/${segment(id)}/read`);
    },
    block: (id) => data(operation('blockConversation', 'POST', `/conversations/${segment(id)}/block`)),
    unblock: (id) => data(operation('unblockConversation', 'DELETE', `/conversations/${segment(id)}/block`)),
    deleteMessage: (id) => data(operation('deleteMessage', 'DELETE', `/messages/${segment(id)}`)),
    presence: (userIds) => data(operation('getPresence', 'GET', `/presence${q('getPresence', { user_ids: userIds.join(',') })}`)),
  };
}
