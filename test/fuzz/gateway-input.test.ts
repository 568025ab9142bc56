import fc from 'fast-check';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { assertValidMessageContent } from '../../src/commands/conversation/message-content.js';
import { api, mintToken, openSocket, startTestGateway, type TestGateway, type TestSocket } from '../support/gateway.js';
import { createTestDatabase, testPrefix, testRoleEnv } from '../support/infra.js';
import { spawnRole, stopAllRoles } from '../support/processes.js';
import { waitForLiveProjection } from '../support/read-model.js';

/**
 * Generated input against a real gateway (in this process) backed by real Postgres, NATS, Redis and the
 * relay and projector processes. The short run is part of `npm test`; `FUZZ_RUNS=5000 npx vitest run
 * test/fuzz` runs the long one. Properties: no 5xx, no crash, no socket closed for a malformed frame,
 * nothing malformed stored, and valid content stored and returned byte for byte.
 */

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 150);
const [ALICE, BOB] = [501, 502];

let gateway: TestGateway;
let aliceToken: string;
let conversationId: string;
/** Contents the gateway acknowledged (201/200 or a WS ack), by message id. */
const accepted = new Map<string, string>();

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  const roleEnv = {
    ...testRoleEnv({ databaseUrl, prefix }),
    LOG_LEVEL: 'warn',
  };
  await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env: roleEnv });
  await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env: roleEnv });
  gateway = await startTestGateway({ databaseUrl, prefix, env: { RATE_LIMIT_MESSAGES_PER_MINUTE: '1000000' } });
  aliceToken = await mintToken(ALICE);
  const created = await api(gateway.url, 'POST', '/api/v1/chat/conversations', { token: aliceToken, body: { user_id: BOB } });
  conversationId = (created.body['data'] as { id: string }).id;
});

afterAll(async () => {
  await gateway?.close();
  await stopAllRoles();
});

/** Text with what breaks naive handling: lone UTF-16 surrogates, NUL, any code point. */
const awkwardText = fc.string({
  unit: fc.oneof(
    fc.integer({ min: 0xd800, max: 0xdfff }).map((unit) => String.fromCharCode(unit)),
    fc.constant('\u0000'),
    fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  ),
  maxLength: 40,
});

/** Any JSON, with the fields the routes read mixed in now and then, valid or not. */
const jsonBody = fc.oneof(
  fc.jsonValue(),
  fc.record(
    {
      conversation_id: fc.oneof(fc.constant('CONVERSATION'), awkwardText, fc.jsonValue()),
      message: fc.oneof(awkwardText, fc.string({ unit: 'grapheme', maxLength: 1_200 }), fc.jsonValue()),
      client_msg_id: fc.oneof(awkwardText, fc.jsonValue()),
      user_id: fc.oneof(fc.integer(), fc.double(), fc.bigInt().map(String), fc.string(), fc.constant(BOB)),
    },
    { requiredKeys: [] },
  ),
  fc.letrec((tie) => ({ deep: fc.oneof({ depthSize: 'large' }, fc.constant(null), fc.array(tie('deep'), { maxLength: 2 })) })).deep,
);

const withConversation = (body: unknown): unknown =>
  JSON.parse(JSON.stringify(body ?? null, (_key, value: unknown) => (value === 'CONVERSATION' ? conversationId : value)) ?? 'null');

function expectEnvelope(response: Awaited<ReturnType<typeof api>>, context: unknown): void {
  expect(response.status, JSON.stringify(context)).toBeLessThan(500);
  expect(typeof response.body['success'], JSON.stringify(response.body)).toBe('boolean');
  if (response.body['success'] === false) expect(typeof response.body['error']).toBe('string');
}

function remember(response: Awaited<ReturnType<typeof api>>): void {
  if (response.status !== 201 && response.status !== 200) return;
  const data = response.body['data'] as { id?: string; msg?: string } | undefined;
  if (data?.id && typeof data.msg === 'string') accepted.set(data.id, data.msg);
}

describe('generated REST input', () => {
  it('never gets a 5xx: message, conversation and page requests, JSON or not', async () => {
    await fc.assert(
      fc.asyncProperty(jsonBody, async (generated) => {
        const body = withConversation(generated);
        const message = await api(gateway.url, 'POST', '/api/v1/chat/messages', { token: aliceToken, body });
        expectEnvelope(message, body);
        remember(message);
        const conversation = await api(gateway.url, 'POST', '/api/v1/chat/conversations', { token: aliceToken, body });
        expectEnvelope(conversation, body);
      }),
      { numRuns: RUNS },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string({ unit: 'binary' }), fc.uint8Array({ maxLength: 64 })),
        async (raw) => {
          // Not JSON, or not even UTF-8.
          const response = await fetch(`${gateway.url}/api/v1/chat/messages`, {
            method: 'POST',
            headers: { authorization: `Bearer ${aliceToken}`, 'content-type': 'application/json' },
            body: raw,
          });
          expect(response.status).toBeLessThan(500);
          await response.arrayBuffer();
        },
      ),
      { numRuns: RUNS },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.record({ limit: awkwardText, offset: fc.string(), before: awkwardText }, { requiredKeys: [] }),
        // A path segment as a client can send it: percent-encoded UTF-8, or broken escapes.
        fc.oneof(
          fc.constant(conversationId),
          awkwardText.filter((text) => text.length > 0 && text.isWellFormed()).map(encodeURIComponent),
          fc.constantFrom('%FF', '%', '%00', '..%2F..%2F', '%C3%28', '%ED%A0%80'),
        ),
        async (query, id) => {
          const search = new URLSearchParams(query as Record<string, string>).toString();
          const response = await api(
            gateway.url,
            'GET',
            `/api/v1/chat/conversations/${id}/messages?${search}`,
            { token: aliceToken },
          );
          expectEnvelope(response, { id, query });
        },
      ),
      { numRuns: RUNS },
    );
  }, 300_000);

  it('stores valid content, SQL, HTML and control characters included, and gives it back byte for byte', async () => {
    const tricky = fc.constantFrom("'; DROP TABLE messages; --", '<script>alert(1)</script>', '\u0007\u001b[31m', '\r\n\t', '😀', 'e\u0301', '\u202e', '\\', '"');
    const content = fc
      .array(fc.oneof(tricky, fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }), fc.string({ unit: 'grapheme', maxLength: 20 })), {
        minLength: 1,
        maxLength: 8,
      })
      .map((parts) => parts.join(''))
      .filter((text) => {
        try {
          assertValidMessageContent(text);
          return true;
        } catch {
          return false;
        }
      });
    const sent = new Map<string, string>();
    await fc.assert(
      fc.asyncProperty(content, async (text) => {
        const response = await api(gateway.url, 'POST', '/api/v1/chat/messages', {
          token: aliceToken,
          body: { conversation_id: conversationId, message: text },
        });
        expect(response.status, JSON.stringify(response.body)).toBe(201);
        const data = response.body['data'] as { id: string; msg: string };
        expect(data.msg).toBe(text);
        sent.set(data.id, text);
        remember(response);
      }),
      { numRuns: RUNS },
    );
    // Every message, newest first, page by page with the cursor.
    const stored = new Map<string, string>();
    for (let before = ''; ; ) {
      const page = await api(gateway.url, 'GET', `/api/v1/chat/conversations/${conversationId}/messages?limit=1000${before}`, {
        token: aliceToken,
      });
      const messages = page.body['data'] as { id: string; msg: string }[];
      for (const message of messages) stored.set(message.id, message.msg);
      if (messages.length < 1000) break;
      before = `&before=${messages.at(-1)!.id}`;
    }
    for (const [id, text] of sent) expect(stored.get(id)).toBe(text);
  }, 300_000);
});

describe('generated WebSocket frames', () => {
  it('answers every frame, closes no socket for a malformed one, and stores only valid messages', async () => {
    const socket: TestSocket = await openSocket(`${gateway.wsUrl}?token=${aliceToken}`);
    await socket.waitFor((frame) => frame.type === 'connected');
    const frameType = fc.constantFrom('send_message', 'typing', 'read', 'join_conversation', 'resume', 'ping', 'auth', 'nope', '');
    const frame = fc.oneof(
      awkwardText,
      jsonBody.map((body) => JSON.stringify(withConversation(body))),
      fc
        .tuple(frameType, jsonBody)
        .map(([type, body]) => {
          const fields = withConversation(body);
          return JSON.stringify({ ...(typeof fields === 'object' && !Array.isArray(fields) ? fields : { value: fields }), type });
        }),
    );
    let answered = 0;
    await fc.assert(
      fc.asyncProperty(frame, async (text) => {
        const before = socket.frames.length;
        const pongs = socket.frames.filter((received) => received.type === 'pong').length;
        socket.send(text);
        // A ping after each frame: its pong proves the socket is open and still reading.
        socket.send({ type: 'ping' });
        await socket.waitForCount((received) => received.type === 'pong', pongs + 1, 10_000);
        expect(socket.ws.readyState).toBe(socket.ws.OPEN);
        for (const received of socket.frames.slice(before)) {
          if (received.type === 'ack' && received['data'] && typeof (received['data'] as { msg?: unknown }).msg === 'string') {
            const data = received['data'] as { id: string; msg: string };
            accepted.set(data.id, data.msg);
          }
        }
        answered++;
      }),
      { numRuns: RUNS },
    );
    expect(answered).toBe(RUNS);
    await socket.close();

    // Nothing malformed reached the log: every stored message is valid content the gateway acknowledged.
    await waitForLiveProjection(gateway.pool);
    const stored = await gateway.pool.any(sql.type(z.object({ message_id: z.string(), content: z.string() }))`
      SELECT data->>'message_id' AS message_id, data->>'content' AS content FROM events WHERE type = 'MessageSent'`);
    for (const { message_id: id, content } of stored) {
      expect(() => assertValidMessageContent(content)).not.toThrow();
      expect(accepted.get(id), `message ${id} was stored but never acknowledged`).toBe(content);
    }
    expect(stored.length).toBe(accepted.size);
  }, 300_000);
});
