import fc from 'fast-check';
import { sql } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { api, mintToken, openSocket, startTestGateway, type TestGateway, type TestSocket } from '../support/gateway.js';
import { createTestDatabase, testPrefix, testRoleEnv } from '../support/infra.js';
import { spawnRole, stopAllRoles } from '../support/processes.js';
import { waitForLiveProjection } from '../support/read-model.js';

/**
 * Generated input against a real gateway (in this process) backed by real Postgres, NATS, Redis and the
 * relay and projector processes. The short run is part of `npm test`; `FUZZ_RUNS=5000 npx vitest run
 * test/fuzz` runs the long one. Properties: no 5xx, no crash, no socket closed for a malformed frame,
 * nothing malformed stored, and valid content stored and returned byte for byte. What is valid comes from
 * the contract (docs/api.md), written out here (`contentViolations`, `clientMsgIdValid`), not from the
 * gateway's own validators; each property counts its outcomes and fails when a class it must reach
 * (successful sends, each refusal) was too rare for the run to mean anything.
 */

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 150);
const [ALICE, BOB] = [501, 502];

let gateway: TestGateway;
let aliceToken: string;
let conversationId: string;
/** Contents the gateway acknowledged (201/200 or a WS ack), by message id. */
const accepted = new Map<string, string>();
/** Users the generated `POST /conversations` bodies started a conversation with Alice for: her partners too. */
const generatedPartners = new Set<number>();

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  const roleEnv = {
    ...testRoleEnv({ databaseUrl, prefix }),
    LOG_LEVEL: 'warn',
  };
  await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env: roleEnv });
  await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env: roleEnv });
  gateway = await startTestGateway({
    databaseUrl,
    prefix,
    env: { RATE_LIMIT_MESSAGES_PER_MINUTE: '1000000', RATE_LIMIT_CONVERSATIONS_PER_MINUTE: '1000000', RATE_LIMIT_LISTS_PER_MINUTE: '1000000' },
  });
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

//// The contract's rules for a message (docs/api.md, POST /messages and the error codes).

type ContentRefusal = 'blank_message' | 'too_long' | 'invalid_characters';

/**
 * The contract's content rules: `blank_message` (empty or only whitespace), `too_long` (over 1000 code
 * points), `invalid_characters` (a lone UTF-16 surrogate or a NUL). Which one is answered when several
 * apply is not specified: all that apply are returned.
 */
function contentViolations(text: string): Set<ContentRefusal> {
  const violations = new Set<ContentRefusal>();
  let codePoints = 0;
  let lone = false;
  for (const character of text) {
    codePoints++;
    const codePoint = character.codePointAt(0)!;
    if (codePoint >= 0xd800 && codePoint <= 0xdfff) lone = true;
  }
  if (/^\s*$/.test(text)) violations.add('blank_message');
  if (codePoints > 1000) violations.add('too_long');
  if (lone || text.includes('\u0000')) violations.add('invalid_characters');
  return violations;
}

/** The contract's client_msg_id: 1..128 characters (code points), well-formed, no control characters. */
function clientMsgIdValid(id: string): boolean {
  const characters = [...id];
  return (
    characters.length >= 1 &&
    characters.length <= 128 &&
    characters.every((character) => {
      const codePoint = character.codePointAt(0)!;
      return !(codePoint >= 0xd800 && codePoint <= 0xdfff) && !(codePoint < 0x20 || (codePoint >= 0x7f && codePoint < 0xa0));
    })
  );
}

const tricky = fc.constantFrom("'; DROP TABLE messages; --", '<script>alert(1)</script>', '\u0007\u001b[31m', '\r\n\t', '😀', 'e\u0301', '\u202e', '\\', '"');
/** Text valid by the contract: SQL, HTML, control characters, emoji, combining marks. */
const validContent = fc
  .array(fc.oneof(tricky, fc.string({ unit: 'binary', minLength: 1, maxLength: 20 }), fc.string({ unit: 'grapheme', maxLength: 20 })), {
    minLength: 1,
    maxLength: 8,
  })
  .map((parts) => parts.join(''))
  .filter((text) => contentViolations(text).size === 0);
const whitespace = fc.string({ unit: fc.constantFrom(' ', '\t', '\n', '\r', '\u00a0', '\u2003', '\u3000', '\ufeff', '\u2028'), maxLength: 30 });
/** Around the 1000-code-point bound, in units of one or two UTF-16 code units. */
const nearTheBound = fc
  .tuple(fc.integer({ min: 995, max: 1005 }), fc.constantFrom('a', '😀', 'é', '\u0301'))
  .map(([count, unit]) => unit.repeat(count));
const withBadCharacter = fc
  .tuple(validContent, fc.constantFrom('\u0000', '\ud800', '\udfff', '\udbff'), fc.nat())
  .map(([text, bad, at]) => {
    const units = at % (text.length + 1);
    return text.slice(0, units) + bad + text.slice(units);
  });
/** Any content at all, biased towards each side of each rule. */
const anyContent = fc.oneof(
  { weight: 4, arbitrary: validContent },
  { weight: 1, arbitrary: whitespace },
  { weight: 1, arbitrary: nearTheBound },
  { weight: 1, arbitrary: withBadCharacter },
);
const badClientMsgId = fc.oneof(
  fc.constant(''),
  fc.integer({ min: 129, max: 200 }).map((length) => 'k'.repeat(length)),
  fc.tuple(fc.uuid(), fc.integer({ min: 0, max: 0x1f }).map((code) => String.fromCharCode(code))).map(([id, control]) => `${id}${control}`),
  fc.uuid().map((id) => `${id}\u0085`),
).filter((id) => !clientMsgIdValid(id));

/** A generated send and what the contract says it gets: `sent` (201) or the refusal's code. */
type SendCase = { readonly body: Record<string, unknown>; readonly expected: 'sent' | ContentRefusal | 'invalid_client_msg_id' | 'invalid_request' | 'not_found' };

const validSend = fc.record(
  {
    conversation_id: fc.constant('CONVERSATION'),
    message: validContent,
    // Unique in every run: a key used twice would get the first message back (200).
    client_msg_id: fc.oneof(
      fc.uuid(),
      fc.tuple(fc.uuid(), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 40 })).map(([id, text]) => `${id}${text}`).filter(clientMsgIdValid),
      fc.constant(null),
    ),
  },
  { requiredKeys: ['conversation_id', 'message'] },
);

const sendCase: fc.Arbitrary<SendCase> = fc.oneof(
  { weight: 3, arbitrary: validSend.map((body): SendCase => ({ body, expected: 'sent' })) },
  ...(['blank_message', 'too_long', 'invalid_characters'] as const).map((code) => ({
    weight: 1,
    arbitrary: fc
      .tuple(validSend, { blank_message: whitespace, too_long: nearTheBound, invalid_characters: withBadCharacter }[code])
      .filter(([, message]) => contentViolations(message).has(code) && contentViolations(message).size === 1)
      .map(([body, message]): SendCase => ({ body: { ...body, message }, expected: code })),
  })),
  {
    weight: 1,
    arbitrary: fc.tuple(validSend, badClientMsgId).map(([body, id]): SendCase => ({ body: { ...body, client_msg_id: id }, expected: 'invalid_client_msg_id' })),
  },
  {
    weight: 1,
    arbitrary: fc
      .tuple(validSend, fc.oneof(fc.integer(), fc.boolean(), fc.array(fc.string(), { maxLength: 2 }), fc.dictionary(fc.string(), fc.string(), { maxKeys: 2 })))
      .map(([body, wrong]): SendCase => ({ body: { ...body, message: wrong }, expected: 'invalid_request' })),
  },
  {
    weight: 1,
    arbitrary: fc.tuple(validSend, fc.oneof(fc.ulid(), fc.string({ minLength: 1, maxLength: 64 }))).map(([body, id]): SendCase => ({
      body: { ...body, conversation_id: id === 'CONVERSATION' ? `${id}-other` : id },
      expected: 'not_found',
    })),
  },
);

/** Counts outcomes by name, for the floors a run must reach. */
function tally(): { add(outcome: string): void; counts: Map<string, number>; atLeast(floors: Record<string, number>): void } {
  const counts = new Map<string, number>();
  return {
    counts,
    add: (outcome) => counts.set(outcome, (counts.get(outcome) ?? 0) + 1),
    atLeast(floors) {
      const seen = Object.fromEntries(counts);
      for (const [outcome, floor] of Object.entries(floors)) {
        expect(counts.get(outcome) ?? 0, `outcome ${outcome} too rare for this run to mean anything: ${JSON.stringify(seen)}`).toBeGreaterThanOrEqual(floor);
      }
    },
  };
}

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
  it('answers each send as the contract says, and never a 5xx: message, conversation and page requests, JSON or not', async () => {
    const outcomes = tally();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          { weight: 7, arbitrary: sendCase },
          { weight: 3, arbitrary: jsonBody.map((body) => ({ body, expected: undefined })) },
        ),
        async ({ body: generated, expected }) => {
          const body = withConversation(generated);
          const message = await api(gateway.url, 'POST', '/api/v1/chat/messages', { token: aliceToken, body });
          expectEnvelope(message, body);
          outcomes.add(message.status === 201 ? 'sent' : `${message.status} ${String(message.body['code'])}`);
          if (expected === 'sent') {
            expect(message.status, JSON.stringify(message.body)).toBe(201);
            expect((message.body['data'] as { msg: string }).msg).toBe((body as { message: string }).message);
          } else if (expected !== undefined) {
            expect(message.status, JSON.stringify({ body, answer: message.body })).toBe(expected === 'not_found' ? 404 : 400);
            expect(message.body['code'], JSON.stringify({ body, answer: message.body })).toBe(expected);
          }
          remember(message);
          const conversation = await api(gateway.url, 'POST', '/api/v1/chat/conversations', { token: aliceToken, body });
          expectEnvelope(conversation, body);
          if (conversation.status === 200 || conversation.status === 201) generatedPartners.add((body as { user_id: number }).user_id);
        },
      ),
      { numRuns: RUNS },
    );
    // A gateway refusing everything (a broken token check, say) would pass the checks above on random input.
    // Floors well below the expected counts (about one run in five is sent; a few in a hundred of each refusal),
    // so that a fair run never misses them by chance, while a gateway that refuses everything always does.
    const floor = Math.max(2, Math.floor(RUNS / 75));
    outcomes.atLeast({
      sent: Math.floor(RUNS / 12),
      '400 blank_message': floor,
      '400 too_long': floor,
      '400 invalid_characters': floor,
      '400 invalid_client_msg_id': floor,
      '400 invalid_request': floor,
      '404 not_found': floor,
    });
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

  it('stores content valid by the contract byte for byte, SQL, HTML and control characters included, and refuses the rest', async () => {
    const sent = new Map<string, string>();
    const outcomes = tally();
    await fc.assert(
      fc.asyncProperty(anyContent, async (text) => {
        const response = await api(gateway.url, 'POST', '/api/v1/chat/messages', {
          token: aliceToken,
          body: { conversation_id: conversationId, message: text },
        });
        const violations = contentViolations(text);
        outcomes.add(violations.size === 0 ? 'valid' : 'refused');
        if (violations.size === 0) {
          expect(response.status, JSON.stringify(response.body)).toBe(201);
          const data = response.body['data'] as { id: string; msg: string };
          expect(data.msg).toBe(text);
          sent.set(data.id, text);
          remember(response);
        } else {
          expect(response.status, JSON.stringify(response.body)).toBe(400);
          expect([...violations], JSON.stringify(response.body)).toContain(response.body['code']);
        }
      }),
      { numRuns: RUNS },
    );
    outcomes.atLeast({ valid: Math.floor(RUNS / 3), refused: Math.floor(RUNS / 10) });
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
      }),
      { numRuns: RUNS },
    );
    await socket.close();

    // Nothing malformed reached the log: every stored message is valid content the gateway acknowledged.
    await waitForLiveProjection(gateway.pool);
    const stored = await gateway.pool.any(sql.type(z.object({ message_id: z.string(), content: z.string() }))`
      SELECT data->>'message_id' AS message_id, data->>'content' AS content FROM events WHERE type = 'MessageSent'`);
    for (const { message_id: id, content } of stored) {
      expect(contentViolations(content), JSON.stringify(content)).toEqual(new Set());
      expect(accepted.get(id), `message ${id} was stored but never acknowledged`).toBe(content);
    }
    expect(stored.length).toBe(accepted.size);
  }, 300_000);
});

describe('generated blocks and presence lists', () => {
  const [CAROL, DAVE] = [503, 504];
  /** Path ids as a client can send them, beside the real conversation's. */
  const otherPathIds = fc.oneof(
    fc.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/),
    awkwardText.filter((text) => text.length > 0 && text.isWellFormed()).map(encodeURIComponent),
    fc.constantFrom('%FF', '%', '%00', '..%2F..%2F', '%C3%28'),
  );

  it('answers block and unblock as the contract says, from a model of who blocked, and never a 5xx', async () => {
    const tokens = new Map([ALICE, CAROL, DAVE].map((user) => [user, '']));
    for (const user of tokens.keys()) tokens.set(user, await mintToken(user));
    const created = await api(gateway.url, 'POST', '/api/v1/chat/conversations', { token: tokens.get(ALICE)!, body: { user_id: CAROL } });
    const pairId = (created.body['data'] as { id: string }).id;
    /** The model: who blocked the pair, written from API.md "Blocking", not from the gateway's code. */
    let blockedBy: number | null = null;
    const outcomes = tally();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(ALICE, CAROL, DAVE),
        fc.constantFrom('POST', 'DELETE'),
        fc.oneof({ weight: 4, arbitrary: fc.constant(pairId) }, { weight: 1, arbitrary: otherPathIds }),
        async (user, method, id) => {
          const response = await api(gateway.url, method, `/api/v1/chat/conversations/${id}/block`, { token: tokens.get(user)! });
          expectEnvelope(response, { user, method, id });
          const visible = id === pairId && user !== DAVE && (blockedBy === null || blockedBy === user);
          const context = JSON.stringify({ user, method, id, blockedBy, answer: response.body });
          if (!visible) {
            expect(response.status, context).toBe(404);
            outcomes.add('404');
            return;
          }
          expect(response.status, context).toBe(200);
          blockedBy = method === 'POST' ? user : null;
          expect((response.body['data'] as { blocked_by: number | null }).blocked_by, context).toBe(blockedBy);
          outcomes.add(`${method} 200`);
        },
      ),
      { numRuns: RUNS },
    );
    outcomes.atLeast({ 'POST 200': 2, 'DELETE 200': 2, '404': 2 });
    // Alice ends free to send in the pair; the presence property below counts Carol as a partner.
    if (blockedBy !== null) {
      const unblocked = await api(gateway.url, 'DELETE', `/api/v1/chat/conversations/${pairId}/block`, { token: tokens.get(blockedBy)! });
      expect(unblocked.status).toBe(200);
    }
  }, 300_000);

  it('answers presence lists as the contract says: 400 for a malformed one, else only the caller\'s partners, never a 5xx', async () => {
    const partners = new Set([BOB, CAROL, ...generatedPartners]);
    /** The contract's list: 1 to 100 positive integers, comma-separated, without leading zeros or signs. */
    const listValid = (text: string): boolean => {
      const parts = text.split(',');
      return parts.length <= 100 && parts.every((part) => /^[1-9][0-9]*$/.test(part) && Number(part) <= Number.MAX_SAFE_INTEGER);
    };
    const someIds = fc.array(fc.oneof(fc.constantFrom(ALICE, BOB, CAROL, DAVE), fc.integer({ min: 1, max: 2 ** 40 })), { minLength: 1, maxLength: 120 });
    const list = fc.oneof(
      { weight: 3, arbitrary: someIds.map((ids) => ids.join(',')) },
      { weight: 1, arbitrary: awkwardText.filter((text) => text.isWellFormed()) },
      { weight: 1, arbitrary: fc.tuple(someIds, fc.constantFrom(',', ' ', '-1', '0', '01', '1.5', '1e3', '9007199254740993', '%00')).map(([ids, bad]) => `${ids.join(',')},${bad}`) },
    );
    const outcomes = tally();
    await fc.assert(
      fc.asyncProperty(list, async (text) => {
        const response = await api(gateway.url, 'GET', `/api/v1/chat/presence?user_ids=${encodeURIComponent(text)}`, { token: aliceToken });
        expectEnvelope(response, { text });
        const context = JSON.stringify({ text, answer: response.body });
        if (!listValid(text)) {
          expect(response.status, context).toBe(400);
          outcomes.add('400');
          return;
        }
        expect(response.status, context).toBe(200);
        const shown = (response.body['data'] as { user_id: number }[]).map((entry) => entry.user_id);
        const asked = new Set(text.split(',').map(Number));
        expect(shown.sort(), context).toEqual([...partners].filter((id) => asked.has(id)).sort());
        outcomes.add(shown.length > 0 ? 'partners shown' : '200 empty');
      }),
      { numRuns: RUNS },
    );
    outcomes.atLeast({ '400': 2, 'partners shown': 2, '200 empty': 2 });
  }, 300_000);
});

// Last: the deletes erase texts the checks above compare with what was acknowledged.
describe('generated deletes', () => {
  it('answers DELETE /messages/:id with 200 to the sender, 403 to the other participant, 404 to anything else, and never a 5xx', async () => {
    const bobToken = await mintToken(BOB);
    const own = [...accepted.keys()];
    expect(own.length).toBeGreaterThan(0);
    const outcomes = tally();
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          { weight: 3, arbitrary: fc.constantFrom(...own) },
          { weight: 1, arbitrary: fc.stringMatching(/^[0-9A-HJKMNP-TV-Z]{26}$/) },
          { weight: 1, arbitrary: awkwardText.filter((text) => text.length > 0 && text.isWellFormed()).map(encodeURIComponent) },
          { weight: 1, arbitrary: fc.constantFrom('%FF', '%', '%00', '..%2F..%2F', '%C3%28', own[0]!.toLowerCase(), `${own[0]!}%00`) },
        ),
        fc.boolean(),
        async (id, bySender) => {
          const response = await api(gateway.url, 'DELETE', `/api/v1/chat/messages/${id}`, { token: bySender ? aliceToken : bobToken });
          expectEnvelope(response, { id, bySender });
          const expected = own.includes(id) ? (bySender ? 200 : 403) : 404;
          expect(response.status, JSON.stringify({ id, bySender, answer: response.body })).toBe(expected);
          outcomes.add(String(response.status));
        },
      ),
      { numRuns: RUNS },
    );
    outcomes.atLeast({ '200': 2, '403': 2, '404': 2 });
  }, 300_000);
});
