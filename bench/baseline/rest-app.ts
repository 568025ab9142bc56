import { Hono, type Context } from 'hono';
import { z } from 'zod';
import { BaselineError, type ChatService } from './chat-service.js';

const startConversationBody = z.object({ user_id: z.number().int().positive() });
const sendMessageBody = z.object({ conversation_id: z.coerce.number().int().positive(), message: z.string() });

const fail = (c: Context, status: 400 | 401 | 404 | 429 | 500, error: string) => c.json({ success: false, error }, status);

async function body<T>(c: Context, schema: z.ZodType<T>): Promise<T> {
  let json: unknown;
  try {
    json = await c.req.json();
  } catch {
    throw new BaselineError(400, 'invalid_input', 'body is not JSON');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new BaselineError(400, 'invalid_input', z.prettifyError(parsed.error));
  return parsed.data;
}

/** The seed's envelope and the two routes the load uses, plus `/health`. */
export function createBaselineRestApp(service: ChatService): Hono {
  const app = new Hono();
  app.get('/health', (c) => c.json({ status: 'ok', service: 'chat-baseline' }));

  const api = new Hono<{ Variables: { userId: number } }>();
  api.use(async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const token = /^Bearer (.+)$/i.exec(header)?.[1];
    if (!token) return fail(c, 401, 'missing bearer token');
    c.set('userId', await service.authenticate(token));
    return next();
  });
  api.post('/conversations', async (c) => {
    const { user_id: other } = await body(c, startConversationBody);
    if (other === c.var.userId) throw new BaselineError(400, 'invalid_input', 'cannot start a conversation with yourself');
    const { conversation, created } = await service.startConversation(c.var.userId, other);
    return c.json({ success: true, data: conversation }, created ? 201 : 200);
  });
  api.post('/messages', async (c) => {
    const input = await body(c, sendMessageBody);
    const message = await service.sendMessage(c.var.userId, input.conversation_id, input.message);
    return c.json({ success: true, data: message }, 201);
  });
  app.route('/api/v1/chat', api);

  app.notFound((c) => c.json({ success: false, error: 'not found' }, 404));
  app.onError((error, c) => (error instanceof BaselineError ? fail(c, error.status, error.message) : fail(c, 500, 'internal error')));
  return app;
}
