import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql, type DatabasePool } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LIVE_TABLES } from '../../src/projections/conversation/apply-conversation-events.js';
import { createDatabasePool } from '../../src/shared/database.js';
import { migrate } from '../../src/shared/migrate.js';
import { sleep } from '../../src/shared/sleep.js';
import { getFreePorts } from '../../stack/free-port.js';
import { startNatsServer, type NatsServer } from '../../stack/nats-server.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../stack/postgres.js';
import { startRedisServer, type RedisServer } from '../../stack/redis-server.js';
import { readStreamVersions, readWholeLog } from '../support/event-log.js';
import { api, gatewayEnv, mintToken } from '../support/gateway.js';
import { natsUsers, testPrefix } from '../support/infra.js';
import { connectTestNats } from '../support/jetstream.js';
import { readModel, waitForLiveProjection } from '../support/read-model.js';
import { waitUntil } from '../support/wait-until.js';
import { keepConnected, newClient, startLoad, type ChatClient } from './chat-clients.js';
import { startBlockToggles, startDeletes, type BlockPair, type RestCall } from './chat-commands.js';
import { auditBlockedConversation, auditBlockToggles, auditDeletes, type MessageRow } from './command-audit.js';
import { auditSends, auditSeqs } from './delivery-audit.js';
import { crashPostgres, postmasterPid } from './server-crashes.js';
import { superviseRole, type SupervisedRole } from './supervisor.js';

/**
 * The fault suite: the whole pipeline (two gateways, two relays, projector, two fan-outs) on its own durable
 * Postgres, nats-server and Redis, under a steady load of WebSocket sends between 20 users, while each fault
 * happens in turn (docs/reliability.md lists them). A supervisor restarts a role that exits, as in
 * production; clients reconnect with their last cursor (`?since=`), as API.md tells them to.
 *
 * Each fault is shown to have happened (a restart, a takeover, a new server pid, clients reconnecting).
 * Checked at the end from the outside: every send, acknowledged or not, is in the log, the read table and
 * both participants' frames exactly once if it was acknowledged or committed, and nowhere otherwise; each
 * user received exactly seq 1..version of its conversation, in order, across reconnections. Under the same
 * faults, senders delete some of their acknowledged messages for everyone and two blockers block and unblock
 * their conversations in turn (chat-commands.ts): no answer but 200, 503 or none; every delete acknowledged
 * or committed is logged once, tombstoned, erased from the log and framed to both; no message lands inside a
 * block, and a blocked user receives nothing of the conversation while blocked (command-audit.ts).
 * `CHAOS_PHASE_SECONDS` (default 3) sets how long the load runs after each fault.
 */

const PHASE_SECONDS = Number(process.env['CHAOS_PHASE_SECONDS'] ?? 3);
const USERS = 20;
const SEND_INTERVAL_MS = 25;
/** One acknowledged send in this many is deleted for everyone by its sender. */
const DELETE_EVERY = 10;
/** The two conversations blocked and unblocked in turn, and who blocks each (one per gateway). */
const BLOCKERS = [17, 20];
const BLOCK_TOGGLE_MS = 1_500;
// Generous: a restarted role takes seconds to start on an idle machine, much longer on two loaded cores.
const EVIDENCE_TIMEOUT_MS = 120_000;
// Seven role processes start at once on two shared cores.
const STARTUP_TIMEOUT_MS = 240_000;
const RELAY_LEADS = /leadership acquired/;
const RELAY_WAITS = /waiting for leadership/;
const FANOUT_LEADS = /fanning out/;
const FANOUT_WAITS = /waiting for the fan-out lease/;

let root: string;
let postgres: EmbeddedPostgres;
let postgresPort: number;
let postgresLog = '';
let nats: NatsServer;
let redis: RedisServer;
let redisPort: number;
let pool: DatabasePool;
let env: Record<string, string>;
const gatewayPorts: number[] = [];
const roles = new Map<string, SupervisedRole>();

const postgresDir = () => path.join(root, 'postgres');
const startPostgres = () =>
  startEmbeddedPostgres({
    dataDir: postgresDir(),
    port: postgresPort,
    // fsync on: a crash of this server is a real test of what it had acknowledged.
    durable: true,
    onLog: (line) => void (postgresLog += `${line}\n`),
  });
const startRedis = () => startRedisServer({ port: redisPort, dir: path.join(root, 'redis') });

async function supervise(name: string, entry: string, extraEnv: Record<string, string> = {}): Promise<SupervisedRole> {
  const role = await superviseRole({ name, entry, env: { ...env, ...extraEnv } });
  roles.set(name, role);
  return role;
}

/** One of `names` holds the lease and the other waits for it. */
async function waitForLeaderAndStandby(names: readonly string[], leads: RegExp, waits: RegExp): Promise<void> {
  const outputs = () => names.map((name) => roles.get(name)!.process.output());
  await waitUntil(
    `one of ${names.join(', ')} to lead and the other to wait`,
    () => Promise.resolve(outputs().filter((output) => leads.test(output)).length === 1 && outputs().every((output) => waits.test(output))),
    { timeoutMs: STARTUP_TIMEOUT_MS },
  );
}

const clients = new Map<number, ChatClient>();
const tokens = new Map<number, string>();
const conversationOf = new Map<number, string>();
let clientsStopped = false;
const partnerOf = (user: number) => (user % 2 === 1 ? user + 1 : user - 1);
const gatewayUrl = (index: number) => `http://127.0.0.1:${gatewayPorts[index]}`;
const blockedUsers = new Set(BLOCKERS.map(partnerOf));
/** A REST call as `user`, to the gateway its socket is on. */
const restCall: RestCall = (user, method, path, signal) => api(gatewayUrl(clients.get(user)!.gateway), method, path, { token: tokens.get(user)!, signal });

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'matcha-chaos-'));
  await chmod(root, 0o755); // Postgres runs as the postgres user when we are root
  const [pgPort, natsPort, ownRedisPort, ...ports] = await getFreePorts(5);
  postgresPort = pgPort!;
  redisPort = ownRedisPort!;
  gatewayPorts.push(...ports);
  postgres = await startPostgres();
  // The run's NATS users: each role logs in as itself, as everywhere else.
  nats = await startNatsServer({ storeDir: path.join(root, 'nats'), port: natsPort!, users: natsUsers() });
  // Our own Redis, not the run's: this suite kills it.
  redis = await startRedis();
  await postgres.createDatabase('chaos');
  const databaseUrl = postgres.url('chaos');
  await migrate(databaseUrl);
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 4 });
  env = {
    ...gatewayEnv({ databaseUrl, prefix: testPrefix() }),
    NATS_URL: nats.url,
    REDIS_URL: redis.url,
    RATE_LIMIT_MESSAGES_PER_MINUTE: '100000',
    RATE_LIMIT_CONVERSATIONS_PER_MINUTE: '100000',
    PROJECTOR_ACK_WAIT_MS: '1000',
    FANOUT_ACK_WAIT_MS: '1000',
    RELAY_LEASE_RETRY_MS: '200',
    FANOUT_LEASE_RETRY_MS: '200',
    LOG_LEVEL: 'warn',
  };
  // Relays and fan-outs log at info: their leadership lines show who took over.
  for (const name of ['relay-a', 'relay-b']) await supervise(name, 'src/relay/main.ts', { LOG_LEVEL: 'info' });
  await supervise('projector', 'src/projections/main.ts', { LOG_LEVEL: 'info' });
  for (const name of ['fanout-a', 'fanout-b']) await supervise(name, 'src/fanout/main.ts', { LOG_LEVEL: 'info' });
  await waitForLeaderAndStandby(['relay-a', 'relay-b'], RELAY_LEADS, RELAY_WAITS);
  await waitForLeaderAndStandby(['fanout-a', 'fanout-b'], FANOUT_LEADS, FANOUT_WAITS);
  for (const [index, port] of gatewayPorts.entries()) {
    const gateway = await supervise(`gateway-${index}`, 'src/gateway/main.ts', { PORT: String(port), LOG_LEVEL: 'info' });
    await gateway.process.waitForOutput(/gateway listening/, STARTUP_TIMEOUT_MS);
  }
  for (let user = 1; user <= USERS; user++) tokens.set(user, await mintToken(user));
}, 300_000);

afterAll(async () => {
  clientsStopped = true;
  for (const client of clients.values()) client.socket?.ws.terminate();
  await Promise.all([...roles.values()].map((role) => role.stop()));
  await pool?.end();
  await redis?.close();
  await nats?.close();
  await postgres?.close();
  await rm(root, { recursive: true, force: true });
});

//// Faults: each does its harm, then returns a check that waits for the evidence that it took place.

type Evidence = () => Promise<string>;
type Fault = readonly [phase: string, inflict: () => Promise<Evidence>];

const within = { timeoutMs: EVIDENCE_TIMEOUT_MS };

function killRole(name: string, readiness: RegExp): () => Promise<Evidence> {
  return () => {
    const role = roles.get(name)!;
    const before = { pid: role.process.pid, restarts: role.restarts };
    role.process.kill('SIGKILL');
    return Promise.resolve(async () => {
      await waitUntil(`${name} to be restarted`, () => Promise.resolve(role.restarts > before.restarts), within);
      await role.process.waitForOutput(readiness, EVIDENCE_TIMEOUT_MS);
      return `${name} pid ${before.pid} killed, restarted as pid ${role.process.pid} (restarts ${before.restarts} -> ${role.restarts})`;
    });
  };
}

function killGateway(index: number): () => Promise<Evidence> {
  const killed = killRole(`gateway-${index}`, /gateway listening/);
  return async () => {
    const theirs = [...clients.values()].filter((client) => client.gateway === index);
    const connections = new Map(theirs.map((client) => [client, client.connections]));
    const restarted = await killed();
    return async () => {
      const role = await restarted();
      await waitUntil(
        `gateway-${index}'s clients to reconnect`,
        () => Promise.resolve(theirs.every((client) => client.connections > connections.get(client)! && client.socket !== null)),
        within,
      );
      return `${role}; its ${theirs.length} clients reconnected`;
    };
  };
}

/** Kills whichever of `names` holds the lease; the other, running since before, must take over. */
function killLeader(names: readonly string[], leads: RegExp, waits: RegExp): () => Promise<Evidence> {
  return () => {
    const group = names.map((name) => roles.get(name)!);
    const leader = group.find((role) => leads.test(role.process.output()));
    const standby = group.find((role) => role !== leader && !leads.test(role.process.output()));
    if (!leader || !standby) throw new Error(`no leader and standby among ${names.join(', ')}`);
    const before = { leaderPid: leader.process.pid, standbyPid: standby.process.pid, restarts: leader.restarts };
    leader.process.kill('SIGKILL');
    return Promise.resolve(async () => {
      await standby.process.waitForOutput(leads, EVIDENCE_TIMEOUT_MS);
      if (standby.process.pid !== before.standbyPid) throw new Error(`${standby.name} was restarted instead of taking over`);
      await waitUntil(`${leader.name} to be restarted`, () => Promise.resolve(leader.restarts > before.restarts), within);
      await leader.process.waitForOutput(waits, EVIDENCE_TIMEOUT_MS);
      return `${leader.name} (leader, pid ${before.leaderPid}) killed; ${standby.name} (pid ${before.standbyPid}) took over; ${leader.name} restarted as standby (pid ${leader.process.pid})`;
    });
  };
}

const NATS_RECOVERED = /NATS reconnected: open sockets caught up from the log/g;
const natsRecoveries = () => [0, 1].map((index) => roles.get(`gateway-${index}`)!.process.output().match(NATS_RECOVERED)?.length ?? 0);

async function streamLastSeq(): Promise<number> {
  const nc = await connectTestNats(nats.url);
  try {
    return (await (await nc.jetstreamManager()).streams.info(env['NATS_STREAM']!)).state.last_seq;
  } finally {
    await nc.close();
  }
}

function restartNats(how: 'graceful' | 'SIGKILL'): () => Promise<Evidence> {
  return async () => {
    const before = { pid: nats.pid, lastSeq: await streamLastSeq(), recoveries: natsRecoveries() };
    let exit = 'stopped (SIGTERM)';
    if (how === 'SIGKILL') {
      nats.kill('SIGKILL');
      const status = await nats.exited();
      exit = `killed (${status.signal ?? `code ${status.code}`})`;
    }
    await nats.restart();
    return async () => {
      if (nats.pid === before.pid) throw new Error('nats-server has the same pid');
      let lastSeq = 0;
      await waitUntil('the stream to hold what it held before', async () => (lastSeq = await streamLastSeq().catch(() => 0)) >= before.lastSeq, within);
      await waitUntil('both gateways to recover their sockets from the log', () => Promise.resolve(natsRecoveries().every((count, index) => count > before.recoveries[index]!)), within);
      return `nats-server pid ${before.pid} ${exit}, restarted as pid ${nats.pid}; stream last_seq ${before.lastSeq} -> ${lastSeq}; both gateways caught their sockets up`;
    };
  };
}

function restartPostgres(how: 'graceful' | 'SIGKILL'): () => Promise<Evidence> {
  return async () => {
    const pid = await postmasterPid(postgresDir());
    if (how === 'SIGKILL') await crashPostgres(postgresDir());
    await postgres.close();
    postgresLog = '';
    postgres = await startPostgres();
    return async () => {
      const now = await postmasterPid(postgresDir());
      if (now === pid) throw new Error('postgres has the same pid');
      const fsync = await pool.oneFirst(sql.type(z.object({ fsync: z.string() }))`SHOW fsync`);
      if (fsync !== 'on') throw new Error(`postgres runs with fsync ${fsync}`);
      const recovery = /database system was not properly shut down; automatic recovery in progress/.test(postgresLog);
      if (recovery !== (how === 'SIGKILL')) throw new Error(`postgres ${recovery ? 'recovered from a crash' : 'did not recover from a crash'}:\n${postgresLog}`);
      return `postgres (fsync on) pid ${pid} ${how === 'SIGKILL' ? 'killed with its children, WAL replayed on start' : 'stopped (fast shutdown)'}, restarted as pid ${now}`;
    };
  };
}

function killRedis(load: ReturnType<typeof startLoad>): () => Promise<Evidence> {
  const unavailableSince = (since: number) =>
    load.sent.filter((message) => message.answer.kind === 'error' && message.answer.code === 'unavailable' && message.answer.at > since).length;
  const listConversations = () => api(gatewayUrl(0), 'GET', '/api/v1/chat/conversations', { token: tokens.get(1)! });
  return async () => {
    const pid = redis.pid;
    const killedAt = Date.now();
    process.kill(pid!, 'SIGKILL');
    await redis.close();
    let refused = { status: 0, code: '' };
    await waitUntil(
      'REST to answer 503 unavailable',
      async () => {
        const answer = await listConversations();
        refused = { status: answer.status, code: String(answer.body['code']) };
        return answer.status === 503 && answer.body['code'] === 'unavailable';
      },
      within,
    );
    await waitUntil('a send to be answered unavailable', () => Promise.resolve(unavailableSince(killedAt) > 0), within);
    redis = await startRedis();
    const restartedAt = Date.now();
    const refusedSends = unavailableSince(killedAt);
    return async () => {
      await waitUntil('a send to be acknowledged again', () => Promise.resolve(load.sent.some((message) => message.answer.kind === 'ack' && message.answer.at > restartedAt)), within);
      await waitUntil('REST to answer 200 again', async () => (await listConversations()).status === 200, within);
      return `redis-server pid ${pid} killed: REST ${refused.status} ${refused.code}, ${refusedSends} sends answered unavailable; restarted as pid ${redis.pid}, sends acknowledged again`;
    };
  };
}

describe('the pipeline under faults', () => {
  it('accounts for every send, and delivers seq 1..version to everyone, through role kills and server crashes', async () => {
    for (let user = 1; user <= USERS; user++) {
      const client = newClient(user, user % 2);
      clients.set(user, client);
      void keepConnected(client, { url: `ws://127.0.0.1:${gatewayPorts[client.gateway]}/api/v1/chat/ws`, token: tokens.get(user)!, stopped: () => clientsStopped });
    }
    await waitUntil('every client connected', () => Promise.resolve([...clients.values()].every((client) => client.socket !== null)), {
      timeoutMs: 20_000,
    });
    // Conversations are created once every client is connected, so each client's first event frame is its
    // conversation_created, and from then on it always has a cursor to resume from.
    for (let user = 1; user <= USERS; user += 2) {
      const created = await api(gatewayUrl(0), 'POST', '/api/v1/chat/conversations', { token: tokens.get(user)!, body: { user_id: user + 1 } });
      const id = (created.body['data'] as { id: string }).id;
      conversationOf.set(user, id);
      conversationOf.set(user + 1, id);
    }
    await waitUntil('every client to have a cursor', () => Promise.resolve([...clients.values()].every((client) => client.cursor !== null)), {
      timeoutMs: 20_000,
    });

    let phase = 'steady';
    // While blocked, the blocked user's deletes are refused 404 by design: only the others delete.
    const deletes = startDeletes({ every: DELETE_EVERY, mayDelete: (user) => !blockedUsers.has(user), phase: () => phase, call: restCall });
    const load = startLoad({
      clients,
      conversationOf: (user) => conversationOf.get(user)!,
      partnerOf,
      phase: () => phase,
      intervalMs: SEND_INTERVAL_MS,
      onAcknowledged: deletes.consider,
    });
    const blockPairs: BlockPair[] = BLOCKERS.map((blocker) => ({ conversationId: conversationOf.get(blocker)!, blocker, blocked: partnerOf(blocker) }));
    // While blocked the blocker deletes its last message: an event the blocked user must not be sent.
    const deleteLastOf = (pair: BlockPair) => {
      const last = load.sent.findLast((message) => message.sender === pair.blocker && message.messageId !== undefined);
      if (last) deletes.deleteNow(last);
    };
    const blocks = startBlockToggles({ pairs: blockPairs, intervalMs: BLOCK_TOGGLE_MS, phase: () => phase, call: restCall, onBlocked: deleteLastOf });
    const faults: Fault[] = [
      ['steady', () => Promise.resolve(() => Promise.resolve('no fault'))],
      ['gateway killed', killGateway(0)],
      ['relay killed', killLeader(['relay-a', 'relay-b'], RELAY_LEADS, RELAY_WAITS)],
      ['projector killed', killRole('projector', /projecting/)],
      ['fan-out killed', killLeader(['fanout-a', 'fanout-b'], FANOUT_LEADS, FANOUT_WAITS)],
      ['nats-server restarted', restartNats('graceful')],
      ['nats-server killed', restartNats('SIGKILL')],
      ['postgres restarted', restartPostgres('graceful')],
      ['postgres killed', restartPostgres('SIGKILL')],
      ['redis killed', killRedis(load)],
    ];
    const observed: { phase: string; seconds: number; evidence: string; happened: boolean }[] = [];
    for (const [name, inflict] of faults) {
      phase = name;
      const started = Date.now();
      const evidence = await inflict();
      await sleep(PHASE_SECONDS * 1_000);
      const seconds = (Date.now() - started) / 1_000;
      await evidence().then(
        (text) => observed.push({ phase: name, seconds, evidence: text, happened: true }),
        (error: unknown) => observed.push({ phase: name, seconds, evidence: String(error), happened: false }),
      );
    }
    phase = 'after';
    await load.stop(); // every send answered or timed out
    await deletes.stop(); // every delete answered or given up
    await blocks.stop(); // every blocked conversation unblocked again, so the last messages reach both

    // A last message in each conversation, on the same ordered path as the rest: once both participants
    // have its frame, every earlier event of the conversation had its chance to arrive.
    const conversations = [...new Set(conversationOf.values())];
    for (const conversationId of conversations) {
      const [user] = [...conversationOf].find(([, id]) => id === conversationId)!;
      await waitUntil(
        'the last message to be accepted',
        async () => {
          const sent = await api(gatewayUrl(1), 'POST', '/api/v1/chat/messages', {
            token: tokens.get(user)!,
            body: { conversation_id: conversationId, message: 'last', client_msg_id: `last-${conversationId}` },
          });
          return sent.status === 201 || sent.status === 200;
        },
        within,
      );
    }
    const gotLast = (client: ChatClient) =>
      client.events.some((frame) => (frame['data'] as { client_msg_id?: string }).client_msg_id === `last-${conversationOf.get(client.userId)}`);
    await waitUntil('every client to receive its conversation\'s last message', () => Promise.resolve([...clients.values()].every(gotLast)), {
      timeoutMs: 60_000,
    }).catch(() => undefined); // the audit below says what is missing
    await waitForLiveProjection(pool, 60_000);

    const log = await readWholeLog(pool);
    const messageRows = (await readModel(pool, LIVE_TABLES)).messages;
    const projectedIds = messageRows.map((row) => row['client_msg_id'] as string | null);
    const framesOf = (user: number) => clients.get(user)!.events;
    const report = auditSends({ sent: load.sent, log, projectedIds, framesOf });
    const deleteReport = auditDeletes({ requests: deletes.requests, log, messageRows: messageRows as MessageRow[], framesOf });
    const toggleReport = auditBlockToggles(blocks.toggles);
    const blockedConversations = blockPairs.map((pair) => auditBlockedConversation(log, pair.conversationId));
    const mismatches = auditSeqs({ log, streamVersions: await readStreamVersions(pool), participants: conversationOf, framesOf });
    const byPhase = <T extends { phase: string }>(rows: readonly T[], phaseName: string) => rows.find((row) => row.phase === phaseName);

    console.log(
      [
        `fault suite (${PHASE_SECONDS} s of load per phase)`,
        ...observed.map((row) => `${row.phase} (${row.seconds.toFixed(1)} s): ${row.happened ? '' : 'NOT OBSERVED: '}${row.evidence}`),
        ...report.flatMap((row) => [
          `sends ${JSON.stringify(row)}`,
          `  deletes ${JSON.stringify(byPhase(deleteReport, row.phase) ?? null)}`,
          `  block changes ${JSON.stringify(byPhase(toggleReport, row.phase) ?? null)}`,
        ]),
        ...[...deleteReport, ...toggleReport].filter((row) => !byPhase(report, row.phase)).map((row) => `after the load: ${JSON.stringify(row)}`),
        ...blockedConversations.map((row) => `blocked in turn: ${JSON.stringify(row)}`),
        `reconnections: ${[...clients.values()].map((client) => client.connections - 1).join(' ')}`,
        ...mismatches.map((mismatch) => `seq mismatch ${JSON.stringify(mismatch)}`),
      ].join('\n'),
    );

    expect(observed.filter((row) => !row.happened)).toEqual([]);
    for (const row of report) {
      expect(row, row.phase).toMatchObject({ lost: 0, duplicated: 0, phantom: 0 });
      expect(row.acknowledged, row.phase).toBeGreaterThan(0);
    }
    for (const row of deleteReport) {
      expect(row, `deletes in ${row.phase}`).toMatchObject({ unexpected: 0, lost: 0, duplicated: 0, phantom: 0 });
    }
    expect(deleteReport.reduce((sum, row) => sum + row.acknowledged, 0)).toBeGreaterThan(0);
    for (const row of toggleReport) expect(row, `block changes in ${row.phase}`).toMatchObject({ unexpected: 0, wrongAnswer: 0 });
    for (const row of blockedConversations) {
      expect(row).toMatchObject({ sentWhileBlocked: 0, outOfTurn: 0 });
      expect(row.blocks, row.conversationId).toBeGreaterThan(1);
    }
    expect(blockedConversations.reduce((sum, row) => sum + row.hidden, 0), 'events a block hid from its blocked user').toBeGreaterThan(0);
    expect(mismatches).toEqual([]);
  }, 900_000);
});
