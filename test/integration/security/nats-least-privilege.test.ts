import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect, type NatsConnection, type Status } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureEventStream } from '../../../src/relay/event-stream.js';
import {
  allDeliverySubjects,
  allSignalSubjects,
  allUserSubjects,
  connectNats,
  deliverySubject,
  eventSubject,
  signalSubject,
} from '../../../src/shared/nats.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { startNatsServer, type NatsServer } from '../../../stack/nats-server.js';
import {
  generatePasswords,
  NATS_ROLES,
  operatorUser,
  roleCredentialsEnv,
  roleUsers,
  type NatsRole,
  type NatsScope,
} from '../../../stack/nats-permissions.js';
import { api, gatewayEnv, mintToken, openSocket, type Frame, type TestSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix, testStreamName } from '../../support/infra.js';
import { streamMessagesHolding } from '../../support/erased-text.js';
import { storedCount } from '../../support/jetstream.js';
import { spawnRole, stopAllRoles } from '../../support/processes.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * Least privilege on NATS, checked from outside against a nats-server of this file configured as
 * `npm start` configures it: the permission table of nats-permissions.ts for one concrete prefix, stream and
 * set of durables (the shared test server allows any prefix, so that every test file can have its own).
 * The five roles run as processes, each logged in as its own user; the test connects with their credentials
 * and tries what they must not do.
 */

const A = 501;
const B = 502;
let root: string;
let nats: NatsServer;
let scope: NatsScope;
let passwords: Record<NatsRole, string>;
let operator: NatsConnection;
let httpUrl: string;
let conversationId: string;
const tokens = new Map<number, string>();
const sockets = new Map<number, TestSocket>();
const connections: NatsConnection[] = [];
/** nats-server's log: every refusal is logged there ("Publish Violation", "Subscription Violation"). */
const serverLog: string[] = [];

/** A connection with a role's credentials whose status events (the server's -ERR lines) are kept. */
async function connectAs(role: NatsRole): Promise<{ nc: NatsConnection; refused: Status[] }> {
  const nc = await connectNats({ url: nats.url, name: `test-as-${role}`, user: role, password: passwords[role] });
  connections.push(nc);
  const refused: Status[] = [];
  void (async () => {
    for await (const status of nc.status()) if (status.permissionContext) refused.push(status);
  })();
  return { nc, refused };
}

let barriers = 0;

/**
 * What the server refused of `subject` on this connection. Barrier: a publish no role may make, sent after
 * the operation; the server answers a connection's operations in order, so once that refusal is in, any
 * refusal of `subject` is too.
 */
async function refusalsOf(connection: { nc: NatsConnection; refused: Status[] }, subject: string): Promise<string[]> {
  const barrier = `refusal-barrier.${++barriers}`;
  connection.nc.publish(barrier, '');
  await waitUntil(`the refusal of ${barrier}`, () => Promise.resolve(connection.refused.some((status) => status.permissionContext?.subject === barrier)), {
    timeoutMs: 10_000,
    intervalMs: 5,
  });
  return connection.refused
    .filter((status) => status.permissionContext?.subject === subject)
    .map((status) => status.permissionContext?.operation ?? '');
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'matcha-nats-auth-'));
  const [natsPort, gatewayPort] = await getFreePorts(2);
  const prefix = testPrefix();
  scope = { subjectPrefix: prefix, stream: testStreamName(prefix), projectorDurable: 'projector', fanoutDurable: 'fanout', notifierDurable: 'notifier' };
  passwords = generatePasswords();
  const operatorPassword = generatePasswords().relay;
  nats = await startNatsServer({
    storeDir: path.join(root, 'nats'),
    port: natsPort!,
    users: [...roleUsers(scope, passwords), operatorUser(operatorPassword)],
    onLog: (line) => serverLog.push(line),
  });
  operator = await connect({ servers: nats.url, user: 'operator', pass: operatorPassword });

  const databaseUrl = await createTestDatabase();
  const env = {
    ...gatewayEnv({ databaseUrl, prefix }),
    NATS_URL: nats.url,
    PROJECTOR_DURABLE: scope.projectorDurable,
    FANOUT_DURABLE: scope.fanoutDurable,
    NOTIFIER_DURABLE: scope.notifierDurable,
  };
  const as = (role: NatsRole) => ({ ...env, ...roleCredentialsEnv(role, passwords[role]) });
  const relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env: as('relay') });
  const projector = await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env: as('projector') });
  const fanout = await spawnRole({ name: 'fanout', entry: 'src/fanout/main.ts', env: as('fanout') });
  const gateway = await spawnRole({ name: 'gateway', entry: 'src/gateway/main.ts', env: { ...as('gateway'), PORT: String(gatewayPort) } });
  const notifier = await spawnRole({ name: 'notifier', entry: 'src/notifier/main.ts', env: as('notifier') });
  // Generous: five roles start at once on a shared machine.
  await gateway.waitForOutput(/gateway listening/, 90_000);
  await relay.waitForOutput(/leadership acquired/, 90_000);
  await projector.waitForOutput(/projecting/, 90_000);
  await fanout.waitForOutput(/fanning out/, 90_000);
  await notifier.waitForOutput(/"msg":"notifying"/, 90_000);
  httpUrl = `http://127.0.0.1:${gatewayPort}`;
  for (const user of [A, B]) {
    tokens.set(user, await mintToken(user));
    const socket = await openSocket(`ws://127.0.0.1:${gatewayPort}/api/v1/chat/ws`, { token: tokens.get(user)! });
    await socket.waitFor((frame) => frame.type === 'connected');
    sockets.set(user, socket);
  }
}, 240_000);

afterAll(async () => {
  for (const socket of sockets.values()) socket.ws.terminate();
  await Promise.all(connections.map((nc) => nc.close()));
  await operator?.close();
  await stopAllRoles();
  await nats?.close();
  if (root) await rm(root, { recursive: true, force: true });
});

describe('NATS users', () => {
  it('refuses a client without a user, and one with a wrong password', async () => {
    await expect(connect({ servers: nats.url, reconnect: false })).rejects.toMatchObject({ code: 'AUTHORIZATION_VIOLATION' });
    await expect(
      connect({ servers: nats.url, reconnect: false, user: 'gateway', pass: `${passwords.gateway}x` }),
    ).rejects.toMatchObject({ code: 'AUTHORIZATION_VIOLATION' });
  });

  it('runs the whole path, typing included, with each role on its own permissions', async () => {
    const created = await api(httpUrl, 'POST', '/api/v1/chat/conversations', { token: tokens.get(A)!, body: { user_id: B } });
    expect(created.status).toBe(201);
    conversationId = (created.body['data'] as { id: string }).id;
    const sent = await api(httpUrl, 'POST', '/api/v1/chat/messages', {
      token: tokens.get(A)!,
      body: { conversation_id: conversationId, message: 'through every role' },
    });
    expect(sent.status).toBe(201);
    const b = sockets.get(B)!;
    expect(await b.waitFor((frame) => frame.type === 'new_message', 20_000)).toMatchObject({
      data: { message: 'through every role' },
    });
    const a = sockets.get(A)!;
    expect(await a.request({ type: 'typing', conversation_id: conversationId, is_typing: true })).toMatchObject({ type: 'ack' });
    expect(await b.waitFor((frame) => frame.type === 'typing')).toMatchObject({ data: { user_id: A, is_typing: true } });
    // Nothing a role did on the way was refused (a refused JetStream call may be retried or swallowed).
    expect(serverLog.filter((line) => /violation/i.test(line))).toEqual([]);
  });

});

describe('what a role may not do', () => {
  const isForged = (frame: Frame): boolean => JSON.stringify(frame).includes('forged');

  it('keeps a gateway from publishing event frames: refused on the delivery subject, dropped on the signal subject', async () => {
    const b = sockets.get(B)!;
    const real = await b.waitFor((frame) => frame.type === 'new_message');
    const next = (real['seq'] as number) + 1;
    const forged = { ...real, seq: next, data: { ...(real['data'] as object), message: 'forged' } };
    const gateway = await connectAs('gateway');

    gateway.nc.publish(deliverySubject(scope.subjectPrefix, B), JSON.stringify(forged));
    expect(await refusalsOf(gateway, deliverySubject(scope.subjectPrefix, B))).toEqual(['publish']);
    // Allowed for gateways (typing, presence, and the fast path's copies of new messages), but from there a
    // gateway takes no other event frame, and a new_message only as the next seq of a conversation its socket
    // knows (docs/security.md): a read receipt, and a message past a gap, are dropped.
    const forgedRead = { ...real, type: 'messages_read', seq: next, data: { reader_id: B, read_at: real['timestamp'], forged: true } };
    const forgedPastGap = { ...forged, seq: next + 1 };
    for (const frame of [forgedRead, forgedPastGap]) gateway.nc.publish(signalSubject(scope.subjectPrefix, B), JSON.stringify(frame));
    expect(await refusalsOf(gateway, signalSubject(scope.subjectPrefix, B))).toEqual([]);
    // A typing frame after them, from the same connection: once it is in, so would they be.
    const typing = { type: 'typing', conversation_id: conversationId, timestamp: new Date().toISOString(), data: { user_id: A, is_typing: false } };
    gateway.nc.publish(signalSubject(scope.subjectPrefix, B), JSON.stringify(typing));
    await b.waitFor((frame) => frame.type === 'typing' && (frame['data'] as { is_typing: boolean }).is_typing === false);
    expect(b.frames.filter(isForged)).toEqual([]);

    // The control: the same frame from the fan-out's user arrives.
    const fanout = await connectAs('fanout');
    fanout.nc.publish(deliverySubject(scope.subjectPrefix, B), JSON.stringify({ ...forged, data: { ...(real['data'] as object), message: 'genuine' } }));
    await fanout.nc.flush();
    await b.waitFor((frame) => JSON.stringify(frame).includes('genuine'));
  });

  it('keeps the fan-out from publishing events into the stream', async () => {
    const jsm = await operator.jetstreamManager();
    await ensureEventStream(jsm, { name: scope.stream, subjectPrefix: scope.subjectPrefix, retentionDays: 1, replicas: 1 });
    const before = await storedCount(operator, scope.stream);
    const fanout = await connectAs('fanout');
    await expect(fanout.nc.jetstream().publish(eventSubject(scope.subjectPrefix, conversationId), '{}')).rejects.toThrow(
      /permissions violation/i,
    );
    expect(await storedCount(operator, scope.stream)).toBe(before);
  });

  /** Per role: subjects it must not publish to, and must not subscribe to. */
  const forbidden = (role: NatsRole): { publish: string[]; subscribe: string[] } => {
    const { subjectPrefix: p, stream } = scope;
    const api = '$JS.API';
    switch (role) {
      case 'relay':
        return {
          publish: [deliverySubject(p, B), signalSubject(p, B), `${api}.STREAM.DELETE.${stream}`, `${api}.STREAM.PURGE.${stream}`],
          subscribe: [`${p}.events.>`, allDeliverySubjects(p), '_INBOX.fanout.>'],
        };
      case 'projector':
        return {
          publish: [
            eventSubject(p, 'c'),
            deliverySubject(p, B),
            `${api}.CONSUMER.MSG.NEXT.${stream}.fanout`,
            `${api}.CONSUMER.DELETE.${stream}.projector`,
            `${api}.STREAM.MSG.DELETE.${stream}`,
          ],
          subscribe: [allDeliverySubjects(p), '_INBOX.relay.>'],
        };
      case 'fanout':
        return {
          publish: [
            eventSubject(p, 'c'),
            signalSubject(p, B),
            `${api}.CONSUMER.MSG.NEXT.${stream}.projector`,
            `$JS.ACK.${stream}.projector.1.1.1.1.1`,
            `${api}.STREAM.PURGE.${stream}`,
            `${api}.STREAM.MSG.DELETE.${stream}`,
          ],
          subscribe: [allSignalSubjects(p), allUserSubjects(p), '_INBOX.projector.>'],
        };
      case 'gateway':
        return {
          publish: [
            deliverySubject(p, B),
            // Of a user's subjects, a gateway publishes on the signal one only.
            `${p}.to.${B}.other`,
            eventSubject(p, 'c'),
            `${api}.INFO`,
            `${api}.STREAM.INFO.${stream}`,
            `${api}.STREAM.MSG.DELETE.${stream}`,
          ],
          subscribe: [`${p}.events.>`, `${p}.>`, '_INBOX.fanout.>', '_INBOX.>', '$JS.>'],
        };
      case 'notifier':
        return {
          publish: [
            eventSubject(p, 'c'),
            deliverySubject(p, B),
            signalSubject(p, B),
            `${api}.CONSUMER.MSG.NEXT.${stream}.fanout`,
            `$JS.ACK.${stream}.projector.1.1.1.1.1`,
            `${api}.CONSUMER.DELETE.${stream}.notifier`,
            `${api}.STREAM.MSG.GET.${stream}`,
          ],
          subscribe: [`${p}.events.>`, allDeliverySubjects(p), allUserSubjects(p), '_INBOX.fanout.>'],
        };
    }
  };

  it.each(NATS_ROLES)('refuses %s what its job does not need', async (role) => {
    const connection = await connectAs(role);
    const { publish, subscribe } = forbidden(role);
    for (const subject of publish) {
      connection.nc.publish(subject, '{}');
      expect({ subject, refused: await refusalsOf(connection, subject) }).toEqual({ subject, refused: ['publish'] });
    }
    for (const subject of subscribe) {
      connection.nc.subscribe(subject, { callback: () => undefined });
      expect({ subject, refused: await refusalsOf(connection, subject) }).toEqual({ subject, refused: ['subscription'] });
    }
  });
});

// Last, so that its events (a delete for everyone) come after every frame the tests above wait for.
describe('erasure', () => {
  it('lets the relay delete the copy of a message deleted for everyone from the stream', async () => {
    const logBefore = serverLog.length;
    const text = `taken back ${Date.now()}`;
    const sent = await api(httpUrl, 'POST', '/api/v1/chat/messages', { token: tokens.get(A)!, body: { conversation_id: conversationId, message: text } });
    expect(sent.status).toBe(201);
    await waitUntil('the message in the stream', async () => (await streamMessagesHolding(operator, text, scope.stream)).length > 0, { timeoutMs: 60_000 });
    const deleted = await api(httpUrl, 'DELETE', `/api/v1/chat/messages/${(sent.body['data'] as { id: string }).id}`, { token: tokens.get(A)! });
    expect(deleted.status).toBe(200);
    await waitUntil('the copy deleted', async () => (await streamMessagesHolding(operator, text, scope.stream)).length === 0, { timeoutMs: 60_000 });
    expect(serverLog.slice(logBefore).filter((line) => /violation/i.test(line))).toEqual([]);
  });
});
