import { Hono } from 'hono';
import type { ChatOperations } from '../chat-operations.js';
import { errorEnvelope, GatewayError } from '../errors.js';
import type { AuthenticatedEnv } from './authenticate.js';
import { ok } from './envelope.js';
import { readJsonBody } from './read-json-body.js';
import { parseConversationPageQuery, parseInput, parsePageQuery, sendMessageBody, startConversationBody } from './request-schemas.js';

/** The seed's routes under `/api/v1/chat`, authenticated by the caller of this function. */
export function chatRoutes(operations: ChatOperations): Hono<AuthenticatedEnv> {
  const routes = new Hono<AuthenticatedEnv>();

  routes.get('/conversations', async (c) =>
    ok(c, await operations.listConversations(c.var.userId, parseConversationPageQuery(c.req.query()), c.var.trace)),
  );

  routes.get('/conversations/:id', async (c) => ok(c, await operations.getConversation(c.var.userId, c.req.param('id'), c.var.trace)));

  routes.post('/conversations', async (c) => {
    const body = parseInput(startConversationBody, await readJsonBody(c));
    if (body.user_id === c.var.userId) throw new GatewayError('invalid_input', 'user_id: cannot start a conversation with yourself');
    const { conversation, created } = await operations.startConversation(c.var.userId, body.user_id, c.var.trace);
    return ok(c, conversation, created ? 201 : 200);
  });

  routes.get('/conversations/:id/messages', async (c) => {
    const page = parsePageQuery(c.req.query());
    return ok(c, await operations.listMessages(c.var.userId, c.req.param('id'), page, c.var.trace));
  });

  routes.post('/messages', async (c) => {
    const body = parseInput(sendMessageBody, await readJsonBody(c));
    const { message, created } = await operations.sendMessage(c.var.userId, {
      conversationId: body.conversation_id,
      content: body.message,
      clientMsgId: body.client_msg_id ?? undefined,
    }, c.var.trace);
    return ok(c, message, created ? 201 : 200);
  });

  routes.delete('/messages/:id', async (c) => ok(c, await operations.deleteMessage(c.var.userId, c.req.param('id'), c.var.trace)));

  // Both paths mark read: `/read` is ours, the trailing-slash form is the seed's.
  for (const path of ['/conversations/:id/read', '/conversations/:id/']) {
    routes.put(path, async (c) => {
      const conversationId = c.req.param('id') ?? '';
      const receipt = await operations.markRead(c.var.userId, conversationId, c.var.trace);
      return ok(c, { message: 'Messages marked as read', conversation_id: conversationId, ...receipt });
    });
  }

  // Block (unmatch) and unblock; both idempotent, both answer the conversation as the caller now sees it.
  routes.post('/conversations/:id/block', async (c) => ok(c, await operations.block(c.var.userId, c.req.param('id'), c.var.trace)));
  routes.delete('/conversations/:id/block', async (c) => ok(c, await operations.unblock(c.var.userId, c.req.param('id'), c.var.trace)));

  // A plain GET of the socket's path (no Upgrade header) reaches here.
  routes.get('/ws', (c) =>
    c.json(errorEnvelope({ message: 'this endpoint needs a WebSocket upgrade', restCode: 'invalid_request' }), 426, { Upgrade: 'websocket' }),
  );

  return routes;
}
