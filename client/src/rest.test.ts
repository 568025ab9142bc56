import { describe, expect, expectTypeOf, it, vi } from 'vitest';
import type { Conversation, Message, Presence } from './frames.js';
import { createRest, type SuccessData } from './rest.js';

type Call = { url: string; method: string; headers: Record<string, string>; body: unknown };

function fakeFetch(answer: { status: number; body: unknown; headers?: Record<string, string> }) {
  const calls: Call[] = [];
  const fetch = vi.fn((url: string, init?: RequestInit) => {
    calls.push({
      url,
      method: init?.method ?? 'GET',
      headers: init?.headers as Record<string, string>,
      body: typeof init?.body === 'string' ? JSON.parse(init.body) : undefined,
    });
    return Promise.resolve(new Response(JSON.stringify(answer.body), { status: answer.status, headers: answer.headers ?? {} }));
  });
  return { fetch: fetch as unknown as typeof globalThis.fetch, calls };
}

const rest = (answer: { status: number; body: unknown; headers?: Record<string, string> }) => {
  const fake = fakeFetch(answer);
  return { api: createRest({ baseUrl: 'http://chat.test:8004/', getToken: () => Promise.resolve('T0K3N'), fetch: fake.fetch }), calls: fake.calls };
};

describe('the REST helpers', () => {
  it('take their answer types from the OpenAPI document, by operationId', () => {
    expectTypeOf<SuccessData<'listConversations'>>().toEqualTypeOf<Conversation[]>();
    expectTypeOf<SuccessData<'startConversation'>>().toEqualTypeOf<Conversation>();
    expectTypeOf<SuccessData<'sendMessage'>>().toEqualTypeOf<Message>();
    expectTypeOf<SuccessData<'getPresence'>>().toEqualTypeOf<Presence[]>();
    expectTypeOf<SuccessData<'deleteMessage'>>().toMatchTypeOf<{ id: string; conv_id: string; deleted_at: string }>();
  });

  it('call each route with the bearer token and unwrap the envelope', async () => {
    const { api, calls } = rest({ status: 200, body: { success: true, data: [] } });
    await api.listConversations();
    await api.listConversations({ limit: 10, before: 'c1' });
    await api.getConversation('a/b');
    await api.listMessages('c1', { limit: 5, before: 'm9' });
    await api.markRead('c1');
    await api.block('c1');
    await api.unblock('c1');
    await api.deleteMessage('m1');
    await api.presence([1, 2, 3]);
    expect(calls.map((call) => `${call.method} ${call.url.replace('http://chat.test:8004/api/v1/chat', '')}`)).toEqual([
      'GET /conversations',
      'GET /conversations?limit=10&before=c1',
      'GET /conversations/a%2Fb',
      'GET /conversations/c1/messages?limit=5&before=m9',
      'PUT /conversations/c1/read',
      'POST /conversations/c1/block',
      'DELETE /conversations/c1/block',
      'DELETE /messages/m1',
      'GET /presence?user_ids=1%2C2%2C3',
    ]);
    expect(calls.every((call) => call.headers['authorization'] === 'Bearer T0K3N')).toBe(true);
  });

  it('tell a created resource (201) from an existing one (200)', async () => {
    const created = rest({ status: 201, body: { success: true, data: { id: 'c1' } } });
    expect(await created.api.startConversation(7)).toEqual({ conversation: { id: 'c1' }, created: true });
    expect(created.calls[0]?.body).toEqual({ user_id: 7 });
    const existing = rest({ status: 200, body: { success: true, data: { id: 'm1' } } });
    expect(await existing.api.sendMessage('c1', 'hi', 'k-1')).toEqual({ message: { id: 'm1' }, created: false });
    expect(existing.calls[0]?.body).toEqual({ conversation_id: 'c1', message: 'hi', client_msg_id: 'k-1' });
  });

  it('throw a ChatError with the status, the code and Retry-After in milliseconds', async () => {
    const { api } = rest({ status: 429, body: { success: false, error: 'slow down', code: 'rate_limited' }, headers: { 'retry-after': '3' } });
    await expect(api.sendMessage('c1', 'hi')).rejects.toMatchObject({ name: 'ChatError', status: 429, code: 'rate_limited', retryAfterMs: 3_000, message: 'slow down' });
    const notJson = createRest({ baseUrl: 'http://x', getToken: () => Promise.resolve('t'), fetch: () => Promise.resolve(new Response('<html>', { status: 502 })) });
    await expect(notJson.listConversations()).rejects.toMatchObject({ code: 'invalid_response', status: 502 });
    const down = createRest({ baseUrl: 'http://x', getToken: () => Promise.resolve('t'), fetch: () => Promise.reject(new TypeError('Failed to fetch')) });
    await expect(down.listConversations()).rejects.toMatchObject({ code: 'network' });
  });
});
