import type { DatabasePool } from 'slonik';
import { sql } from 'slonik';
import { WebSocket } from 'ws';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabasePool } from '../../../src/shared/database.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { api, gatewayEnv, mintToken, openSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { waitUntil } from '../../support/wait-until.js';

const TRACEPARENT = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
const ULID = /^[0-9A-HJKMNP-TV-Z]{26}$/;

let pool: DatabasePool;
let url: string;
let wsUrl: string;
const roles = new Map<string, RoleProcess>();
let alice: string;
let conversationId: string;

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const port = (await getFreePorts(1))[0]!;
  const env = { ...gatewayEnv({ databaseUrl, prefix: testPrefix() }), LOG_LEVEL: 'debug', PORT: String(port) };
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 2 });
  for (const [name, entry] of [
    ['relay', 'src/relay/main.ts'],
    ['projector', 'src/projections/main.ts'],
    ['fanout', 'src/fanout/main.ts'],
    ['gateway', 'src/gateway/main.ts'],
  ] as const) {
    const role = await spawnRole({ name, entry, env });
    await role.waitForOutput(/ops server on port/, 120_000);
    roles.set(name, role);
  }
  await roles.get('fanout')!.waitForOutput(/fanning out/, 120_000);
  await roles.get('gateway')!.waitForOutput(/listening/, 120_000);
  url = `http://127.0.0.1:${port}`;
  wsUrl = `ws://127.0.0.1:${port}/api/v1/chat/ws`;
  alice = await mintToken(21);
  const started = await api(url, 'POST', '/api/v1/chat/conversations', { token: alice, body: { user_id: 22 } });
  conversationId = (started.body['data'] as { id: string }).id;
});

afterAll(async () => {
  await stopAllRoles();
  await pool.end();
});

/** The JSON log lines a role printed so far. */
function logLines(role: string): Record<string, unknown>[] {
  return roles
    .get(role)!
    .output()
    .split('\n')
    .flatMap((line) => {
      try {
        return [JSON.parse(line) as Record<string, unknown>];
      } catch {
        return [];
      }
    });
}

const metadataRow = z.object({ event_id: z.string(), metadata: z.record(z.string(), z.unknown()) });

/** The MessageSent event of a message id: its event id and metadata as stored. */
async function sentEvent(messageId: string): Promise<z.infer<typeof metadataRow>> {
  return pool.one(sql.type(metadataRow)`
    SELECT event_id, metadata FROM events WHERE type = 'MessageSent' AND data->>'message_id' = ${messageId}`);
}

/** Waits until each of the relay, the projector and the fan-out logged the event, and returns those lines. */
async function followedThroughThePipeline(eventId: string): Promise<Record<string, Record<string, unknown>>> {
  const messages = { relay: 'event published', projector: 'event projected', fanout: 'event fanned out' } as const;
  const found: Record<string, Record<string, unknown>> = {};
  const allLogged = (): boolean =>
    Object.entries(messages).every(([role, msg]) => {
      const line = logLines(role).find((candidate) => candidate['msg'] === msg && candidate['eventId'] === eventId);
      if (line) found[role] = line;
      return line !== undefined;
    });
  await waitUntil(`event ${eventId} in the relay, projector and fan-out logs`, () => Promise.resolve(allLogged()));
  return found;
}

async function send(headers: Record<string, string>, message: string) {
  return api(url, 'POST', '/api/v1/chat/messages', { token: alice, headers, body: { conversation_id: conversationId, message } });
}

describe('request ids and trace context over REST', () => {
  it('echoes a sane X-Request-Id, logs it, records it with the traceparent on the event, and every role logs both', async () => {
    const sent = await send({ 'x-request-id': 'client-req-1', traceparent: TRACEPARENT }, 'traced hello');
    expect(sent.status).toBe(201);
    expect(sent.headers.get('x-request-id')).toBe('client-req-1');

    const event = await sentEvent((sent.body['data'] as { id: string }).id);
    expect(event.metadata).toEqual({ request_id: 'client-req-1', traceparent: TRACEPARENT });
    const gatewayLine = logLines('gateway').find((line) => line['msg'] === 'request' && line['path'] === '/api/v1/chat/messages');
    expect(gatewayLine).toMatchObject({ request_id: 'client-req-1', traceparent: TRACEPARENT, status: 201 });

    const lines = await followedThroughThePipeline(event.event_id);
    for (const role of ['relay', 'projector', 'fanout']) {
      expect(lines[role]).toMatchObject({ request_id: 'client-req-1', traceparent: TRACEPARENT });
    }
  });

  it('replaces a hostile X-Request-Id with a new one, never logs it, and ignores an invalid traceparent', async () => {
    const hostile = 'evil"} {"level":60,"msg":"forged';
    const invalidTraceparent = '00-00000000000000000000000000000000-00f067aa0ba902b7-01';
    const sent = await send({ 'x-request-id': hostile, traceparent: invalidTraceparent }, 'untraced hello');
    expect(sent.status).toBe(201);
    const issued = sent.headers.get('x-request-id') ?? '';
    expect(issued).toMatch(ULID);

    const event = await sentEvent((sent.body['data'] as { id: string }).id);
    expect(event.metadata).toEqual({ request_id: issued });
    const lines = await followedThroughThePipeline(event.event_id);
    for (const role of ['relay', 'projector', 'fanout']) {
      expect(lines[role]?.['request_id']).toBe(issued);
      expect(lines[role]).not.toHaveProperty('traceparent');
    }
    for (const role of roles.keys()) {
      expect(roles.get(role)!.output()).not.toContain('evil');
      expect(roles.get(role)!.output()).not.toContain(invalidTraceparent);
    }
  });

  it('gives a request without an id a new one, also on an error answer', async () => {
    const refused = await api(url, 'GET', '/api/v1/chat/conversations');
    expect(refused.status).toBe(401);
    expect(refused.headers.get('x-request-id')).toMatch(ULID);
    const missing = await api(url, 'GET', '/api/v1/chat/nowhere', { token: alice, headers: { 'x-request-id': 'lost-1' } });
    expect(missing.status).toBe(404);
    expect(missing.headers.get('x-request-id')).toBe('lost-1');
  });
});

describe('request ids and trace context over WebSocket', () => {
  it('records each command frame\'s request_id with the upgrade\'s traceparent, and echoes the upgrade\'s id', async () => {
    const socket = await openSocket(wsUrl, { token: alice, headers: { 'x-request-id': 'socket-1', traceparent: TRACEPARENT } });
    await socket.waitFor((frame) => frame.type === 'connected');

    socket.send({ type: 'send_message', request_id: 'ws-send-1', conversation_id: conversationId, content: 'over the socket' });
    const ack = await socket.waitFor((frame) => frame.type === 'ack' && frame['request_id'] === 'ws-send-1');
    const traced = await sentEvent((ack['data'] as { id: string }).id);
    expect(traced.metadata).toEqual({ request_id: 'ws-send-1', traceparent: TRACEPARENT });
    const lines = await followedThroughThePipeline(traced.event_id);
    expect(lines['fanout']).toMatchObject({ request_id: 'ws-send-1', traceparent: TRACEPARENT });

    socket.send({ type: 'send_message', request_id: 'not a sane id', conversation_id: conversationId, content: 'bad id' });
    const second = await socket.waitFor((frame) => frame.type === 'ack' && frame['request_id'] === 'not a sane id');
    const replaced = await sentEvent((second['data'] as { id: string }).id);
    expect(replaced.metadata['request_id']).toMatch(ULID);
    expect(replaced.metadata['traceparent']).toBe(TRACEPARENT);
    await socket.close();
  });

  it('answers the upgrade with its request id', async () => {
    const ws = new WebSocket(`${wsUrl}?token=${alice}`, { headers: { 'x-request-id': 'socket-2' } });
    const echoed = new Promise<unknown>((resolve) => ws.once('upgrade', (response) => resolve(response.headers['x-request-id'])));
    await new Promise((resolve, reject) => {
      ws.once('open', resolve);
      ws.once('error', reject);
    });
    expect(await echoed).toBe('socket-2');
    const closed = new Promise((resolve) => ws.once('close', resolve));
    ws.close();
    await closed;
  });
});
