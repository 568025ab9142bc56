import type { DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { conversationDecider } from '../../../src/commands/conversation/conversation.js';
import { startConversation, type CommandDeps } from '../../../src/commands/conversation/conversation-commands.js';
import { handleCommand } from '../../../src/commands/handle-command.js';
import { configSchemas, loadConfig } from '../../../src/shared/config.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { api, gatewayEnv, mintToken, openSocket, type Frame, type TestSocket } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * Presence across gateway processes (docs/presence.md): `presence` frames to the partners of a user who
 * comes online or goes offline (after the grace, not on a reconnect inside it; not while a socket is open on
 * another gateway; within the lease time when its gateway is killed), never to strangers nor across a block;
 * GET /presence shows partners only.
 */

const GRACE_MS = 1_500;
/** Renewed every second: a killed gateway's users are offline 3 s (plus a sweep) after its last renewal. */
const LEASE_TTL_MS = 3_000;
const SETTINGS = { PRESENCE_OFFLINE_GRACE_MS: String(GRACE_MS), PRESENCE_SWEEP_INTERVAL_MS: '100', WS_SOCKET_LEASE_TTL_MS: String(LEASE_TTL_MS) };

type Gateway = { readonly process: RoleProcess; readonly url: string; readonly wsUrl: string };

let databaseUrl: string;
let prefix: string;
let pool: DatabasePool;
let deps: CommandDeps;
let one: Gateway;
let two: Gateway;
const sockets: TestSocket[] = [];

async function spawnGateway(name: string): Promise<Gateway> {
  const [port] = await getFreePorts(1);
  const process = await spawnRole({ name, entry: 'src/gateway/main.ts', env: { ...gatewayEnv({ databaseUrl, prefix }), ...SETTINGS, PORT: String(port) } });
  await process.waitForOutput(/gateway listening/);
  return { process, url: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/api/v1/chat/ws` };
}

beforeAll(async () => {
  databaseUrl = await createTestDatabase();
  prefix = testPrefix();
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 2 });
  deps = { pool, clock: () => new Date(), newId: monotonicFactory() };
  [one, two] = await Promise.all([spawnGateway('gateway-1'), spawnGateway('gateway-2')]);
}, 120_000);
afterAll(async () => {
  for (const socket of sockets) socket.ws.terminate();
  await stopAllRoles();
  await pool.end();
});

async function connect(gateway: Gateway, userId: number): Promise<TestSocket> {
  const socket = await openSocket(gateway.wsUrl, { token: await mintToken(userId) });
  sockets.push(socket);
  await socket.waitFor((frame) => frame.type === 'connected');
  return socket;
}

async function converse(userId: number, ...partners: number[]): Promise<Map<number, string>> {
  const ids = new Map<number, string>();
  for (const partner of partners) ids.set(partner, (await startConversation(deps, { initiatorId: userId, otherUserId: partner })).conversationId);
  return ids;
}

const block = (conversationId: string, userId: number) =>
  handleCommand(pool, conversationDecider, conversationId, { type: 'BlockConversation', userId, now: new Date() });

const anyTime: unknown = expect.any(String);

type PresenceData = { user_id: number; online: boolean; last_seen_at: string | null };
const presenceData = (frame: Frame) => frame['data'] as PresenceData;
const isPresenceOf = (userId: number, online?: boolean) => (frame: Frame) =>
  frame.type === 'presence' && presenceData(frame).user_id === userId && (online === undefined || presenceData(frame).online === online);
/** The presence frames a socket received, as `<user>:on|off`. */
const presenceLog = (socket: TestSocket) =>
  socket.frames.filter((frame) => frame.type === 'presence').map((frame) => `${presenceData(frame).user_id}:${presenceData(frame).online ? 'on' : 'off'}`);

async function presence(gateway: Gateway, callerId: number, query: string) {
  return api(gateway.url, 'GET', `/api/v1/chat/presence${query}`, { token: await mintToken(callerId) });
}

describe('presence across gateways', () => {
  it('tells partners on either gateway when a user comes online, and when it goes offline after the grace; strangers and blocked partners hear nothing', async () => {
    const [user, partnerHere, partnerThere, blocked, blocker, stranger, barrier] = [1101, 1102, 1103, 1104, 1105, 1106, 1107];
    const conversations = await converse(user, partnerHere, partnerThere, blocked, blocker);
    await block(conversations.get(blocked)!, user);
    await block(conversations.get(blocker)!, blocker);
    // The barrier user's partners are everyone who must hear nothing of `user`.
    await converse(barrier, blocked, blocker, stranger, partnerHere);
    const here = await connect(one, partnerHere);
    const there = await connect(two, partnerThere);
    const silent = [await connect(one, blocked), await connect(two, blocker), await connect(one, stranger)];

    const socket = await connect(two, user);
    const [online] = await Promise.all([here.waitFor(isPresenceOf(user, true)), there.waitFor(isPresenceOf(user, true))]);
    expect(online).toMatchObject({ type: 'presence', data: { user_id: user, online: true } });
    expect(Object.keys(presenceData(online)).sort()).toEqual(['last_seen_at', 'online', 'user_id']);
    expect(Date.parse(presenceData(online).last_seen_at!)).not.toBeNaN();

    const closedAt = Date.now();
    await socket.close();
    const offline = await here.waitFor(isPresenceOf(user, false), 15_000);
    expect(Date.now() - closedAt).toBeGreaterThanOrEqual(GRACE_MS);
    const lastSeen = Date.parse(presenceData(offline).last_seen_at!);
    expect(lastSeen).toBeGreaterThanOrEqual(closedAt - 1_000);
    expect(lastSeen).toBeLessThanOrEqual(closedAt + 1_000);
    await there.waitFor(isPresenceOf(user, false));
    expect(presenceLog(here)).toEqual([`${user}:on`, `${user}:off`]);
    expect(presenceLog(there)).toEqual([`${user}:on`, `${user}:off`]);

    // Barrier: another user's coming online reaches every silent socket after anything about `user` would have.
    await connect(one, barrier);
    for (const quiet of silent) {
      await quiet.waitFor(isPresenceOf(barrier, true));
      expect(presenceLog(quiet)).toEqual([`${barrier}:on`]);
    }
  });

  it('says nothing when the last socket reconnects inside the grace', async () => {
    const [user, partner, barrier] = [1201, 1202, 1203];
    await converse(partner, user, barrier);
    const watcher = await connect(one, partner);
    const first = await connect(two, user);
    await watcher.waitFor(isPresenceOf(user, true));
    const closedAt = Date.now();
    await first.close();
    const again = await connect(one, user);

    // The earliest moment a flap could have been announced, then another user's whole round after it.
    await waitUntil('the grace of the first socket to pass', () => Promise.resolve(Date.now() > closedAt + GRACE_MS), { intervalMs: 50 });
    const other = await connect(two, barrier);
    await watcher.waitFor(isPresenceOf(barrier, true));
    await other.close();
    await watcher.waitFor(isPresenceOf(barrier, false), 15_000);
    expect(presenceLog(watcher)).toEqual([`${user}:on`, `${barrier}:on`, `${barrier}:off`]);
    const seen = await presence(one, partner, `?user_ids=${user}`);
    expect(seen.body['data']).toEqual([{ user_id: user, online: true, last_seen_at: anyTime }]);
    await again.close();
  });

  it('keeps a user with sockets on two gateways online while one of them is open', async () => {
    const [user, partner] = [1301, 1302];
    await converse(partner, user);
    const watcher = await connect(one, partner);
    const onOne = await connect(one, user);
    const onTwo = await connect(two, user);
    await watcher.waitFor(isPresenceOf(user, true));
    const firstClosedAt = Date.now();
    await onOne.close();
    await waitUntil('the grace of the first socket to pass', () => Promise.resolve(Date.now() > firstClosedAt + GRACE_MS + 300), { intervalMs: 50 });
    const seen = await presence(two, partner, `?user_ids=${user}`);
    expect(seen.body['data']).toEqual([{ user_id: user, online: true, last_seen_at: anyTime }]);

    const lastClosedAt = Date.now();
    await onTwo.close();
    // The one offline comes from the last close: last seen then, not at the first.
    const offline = await watcher.waitFor(isPresenceOf(user, false), 15_000);
    expect(Date.parse(presenceData(offline).last_seen_at!)).toBeGreaterThanOrEqual(lastClosedAt - 500);
    expect(presenceLog(watcher)).toEqual([`${user}:on`, `${user}:off`]);
  });

  it('takes the users of a killed gateway offline within the lease time, and the defaults within 60 s', async () => {
    const defaults = loadConfig(configSchemas.gateway, { NODE_ENV: 'test', DATABASE_URL: 'postgres://localhost/x' });
    // The lease lapses at most its TTL after the kill; the next sweep sees it; the claim matters only if a sweeper dies too.
    expect(defaults.WS_SOCKET_LEASE_TTL_MS + defaults.PRESENCE_SWEEP_INTERVAL_MS).toBeLessThanOrEqual(50_000);
    expect(defaults.PRESENCE_OFFLINE_GRACE_MS).toBe(10_000);

    const [user, partner] = [1401, 1402];
    await converse(partner, user);
    const watcher = await connect(one, partner);
    const doomed = await spawnGateway('gateway-doomed');
    await connect(doomed, user);
    const connectedAt = Date.now();
    await watcher.waitFor(isPresenceOf(user, true));
    // A live gateway renews its sockets' leases: past their first lifetime the user is online still.
    await waitUntil('the first lease lifetime to pass', () => Promise.resolve(Date.now() > connectedAt + LEASE_TTL_MS + 500), { intervalMs: 50 });
    expect((await presence(one, partner, `?user_ids=${user}`)).body['data']).toEqual([{ user_id: user, online: true, last_seen_at: anyTime }]);
    const killedAt = Date.now();
    doomed.process.kill('SIGKILL');
    await doomed.process.exited;
    const offline = await watcher.waitFor(isPresenceOf(user, false), 20_000);
    expect(Date.now() - killedAt).toBeLessThan(LEASE_TTL_MS + 2_500);
    expect(Date.parse(presenceData(offline).last_seen_at!)).toBeLessThanOrEqual(killedAt + 500);
    expect(presenceLog(watcher)).toEqual([`${user}:on`, `${user}:off`]);
  });

  it('answers GET /presence for partners only: strangers, blocked partners and the caller are left out', async () => {
    const [caller, present, offline, never, blocked, blocker, stranger] = [1501, 1502, 1503, 1504, 1505, 1506, 1507];
    const conversations = await converse(caller, present, offline, never, blocked, blocker);
    await block(conversations.get(blocked)!, caller);
    await block(conversations.get(blocker)!, blocker);
    const watcher = await connect(one, caller);
    await connect(two, present);
    const leaving = await connect(one, offline);
    for (const user of [blocked, blocker, stranger]) await connect(one, user);
    await watcher.waitFor(isPresenceOf(present, true));
    await watcher.waitFor(isPresenceOf(offline, true));
    const closedAt = Date.now();
    await leaving.close();
    await watcher.waitFor(isPresenceOf(offline, false), 15_000);

    const all = [present, offline, never, blocked, blocker, stranger, caller, 999_999].join(',');
    const answer = await presence(two, caller, `?user_ids=${all},${present}`);
    expect(answer.status).toBe(200);
    const data = answer.body['data'] as PresenceData[];
    expect(data.map((entry) => entry.user_id)).toEqual([present, offline, never]);
    expect(data[0]).toEqual({ user_id: present, online: true, last_seen_at: anyTime });
    expect(data[1]).toMatchObject({ user_id: offline, online: false });
    expect(Math.abs(Date.parse(data[1]!.last_seen_at!) - closedAt)).toBeLessThan(1_000);
    expect(data[2]).toEqual({ user_id: never, online: false, last_seen_at: null });
    // Either side of a block sees nothing of the other; a stranger sees nothing of anyone.
    expect((await presence(one, blocked, `?user_ids=${caller}`)).body['data']).toEqual([]);
    expect((await presence(one, blocker, `?user_ids=${caller}`)).body['data']).toEqual([]);
    expect((await presence(one, stranger, `?user_ids=${all}`)).body['data']).toEqual([]);
  });

  it('refuses a malformed list or more than 100 ids with 400', async () => {
    const hundred = Array.from({ length: 100 }, (_, i) => i + 1).join(',');
    expect((await presence(one, 1601, `?user_ids=${hundred}`)).status).toBe(200);
    for (const query of ['', '?user_ids=', '?user_ids=abc', '?user_ids=1,,2', '?user_ids=1,', '?user_ids=-1', '?user_ids=0', '?user_ids=1.5', `?user_ids=${hundred},101`, '?user_ids=99999999999999999']) {
      const answer = await presence(one, 1601, query);
      expect(answer.status, query).toBe(400);
      expect(answer.body, query).toMatchObject({ success: false, code: 'invalid_request' });
    }
  });
});
