import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql, type DatabasePool } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createDatabasePool } from '../../src/shared/database.js';
import { migrate } from '../../src/shared/migrate.js';
import { sleep } from '../../src/shared/sleep.js';
import { getFreePorts } from '../../stack/free-port.js';
import { startNatsServer, type NatsServer } from '../../stack/nats-server.js';
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../stack/postgres.js';
import { api, gatewayEnv, mintToken, openSocket, type Frame, type TestSocket } from '../support/gateway.js';
import { natsUsers, testPrefix } from '../support/infra.js';
import { spawnRole, type RoleProcess } from '../support/processes.js';
import { waitForLiveProjection } from '../support/read-model.js';
import { waitUntil } from '../support/wait-until.js';

/**
 * The fault suite: the whole pipeline (two gateways, relay, projector, fan-out) on its own Postgres and
 * nats-server, under a steady load of WebSocket sends between 20 users, while each fault happens in turn:
 * SIGKILL of each role (restarted by a supervisor, as in production), a nats-server restart, a Postgres
 * restart. Clients reconnect with their last cursor (`?since=`), as API.md tells them to.
 *
 * Checked from the outside, per phase: every message acknowledged to its sender is in the event log once,
 * in the read tables once, and reached its recipient once, live or by resume, in seq order per conversation.
 * `CHAOS_PHASE_SECONDS` (default 3) sets how long the load runs after each fault; the counts are printed.
 */

const PHASE_SECONDS = Number(process.env['CHAOS_PHASE_SECONDS'] ?? 3);
const USERS = 20;
const SEND_INTERVAL_MS = 25;

let root: string;
let postgres: EmbeddedPostgres;
let postgresPort: number;
let nats: NatsServer;
let pool: DatabasePool;
let env: Record<string, string>;
const gatewayPorts: number[] = [];

//// A supervisor: a role that exits is started again, as systemd or Kubernetes would.

type Supervised = { readonly name: string; process: RoleProcess; stopping: boolean; restarts: number };
const roles = new Map<string, Supervised>();

async function supervise(name: string, entry: string, extraEnv: Record<string, string> = {}): Promise<Supervised> {
  const role: Supervised = { name, process: await spawnRole({ name, entry, env: { ...env, ...extraEnv } }), stopping: false, restarts: 0 };
  roles.set(name, role);
  const watch = (process: RoleProcess) =>
    void process.exited.then(async () => {
      if (role.stopping) return;
      await sleep(300);
      role.restarts++;
      role.process = await spawnRole({ name, entry, env: { ...env, ...extraEnv } });
      watch(role.process);
    });
  watch(role.process);
  return role;
}

//// Clients: one socket per user, reconnected with the last cursor it saw.

type Client = {
  readonly userId: number;
  readonly gateway: number;
  socket: TestSocket | null;
  cursor: string | null;
  /** Every event frame received, across reconnections, in arrival order. */
  readonly events: Frame[];
};

const clients = new Map<number, Client>();
const tokens = new Map<number, string>();
let stopping = false;

async function keepConnected(client: Client): Promise<void> {
  while (!stopping) {
    const since = client.cursor ? `?since=${encodeURIComponent(client.cursor)}` : '';
    const socket = await openSocket(`ws://127.0.0.1:${gatewayPorts[client.gateway]}/api/v1/chat/ws${since}`, {
      token: tokens.get(client.userId)!,
    }).catch(() => null);
    if (!socket) {
      await sleep(200);
      continue;
    }
    // From the socket's own record of frames: the catch-up can arrive in the same read as the upgrade, before
    // a listener added after `openSocket` resolved would run.
    let taken = 0;
    const take = () => {
      for (; taken < socket.frames.length; taken++) {
        const frame = socket.frames[taken]!;
        if (typeof frame['seq'] !== 'number') continue;
        client.events.push(frame);
        client.cursor = frame['cursor'] as string;
      }
    };
    take();
    socket.ws.on('message', take);
    client.socket = socket;
    await socket.closed;
    client.socket = null;
  }
}

//// The load: each tick, one user sends in its conversation; acknowledged messages are recorded by phase.

type Sent = { readonly phase: string; readonly conversationId: string; readonly sender: number; readonly recipient: number; id?: string };
const sent: Sent[] = [];
const conversationOf = new Map<number, string>();
let phase = 'warm-up';

async function load(): Promise<void> {
  for (let tick = 0; !stopping; tick++) {
    const sender = (tick % USERS) + 1;
    const recipient = sender % 2 === 1 ? sender + 1 : sender - 1;
    const socket = clients.get(sender)?.socket;
    if (socket && socket.ws.readyState === socket.ws.OPEN) {
      const message: Sent = { phase, conversationId: conversationOf.get(sender)!, sender, recipient };
      sent.push(message);
      void socket
        .request({ type: 'send_message', conversation_id: message.conversationId, content: `${phase} #${tick}` }, 5_000)
        .then((answer) => {
          if (answer.type === 'ack') message.id = (answer['data'] as { id: string }).id;
        })
        .catch(() => undefined);
    }
    await sleep(SEND_INTERVAL_MS);
  }
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'matcha-chaos-'));
  await chmod(root, 0o755); // Postgres runs as the postgres user when we are root
  const [pgPort, natsPort, ...ports] = await getFreePorts(4);
  postgresPort = pgPort!;
  gatewayPorts.push(...ports);
  postgres = await startEmbeddedPostgres({ dataDir: path.join(root, 'postgres'), port: postgresPort, durable: false });
  // The run's NATS users: each role logs in as itself, as everywhere else.
  nats = await startNatsServer({ storeDir: path.join(root, 'nats'), port: natsPort!, users: natsUsers() });
  await postgres.createDatabase('chaos');
  const databaseUrl = postgres.url('chaos');
  await migrate(databaseUrl);
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 4 });
  env = {
    ...gatewayEnv({ databaseUrl, prefix: testPrefix() }),
    NATS_URL: nats.url,
    RATE_LIMIT_MESSAGES_PER_MINUTE: '100000',
    PROJECTOR_ACK_WAIT_MS: '1000',
    FANOUT_ACK_WAIT_MS: '1000',
    RELAY_LEASE_RETRY_MS: '200',
    FANOUT_LEASE_RETRY_MS: '200',
    LOG_LEVEL: 'warn',
  };
  await supervise('relay', 'src/relay/main.ts');
  await supervise('projector', 'src/projections/main.ts');
  const fanout = await supervise('fanout', 'src/fanout/main.ts', { LOG_LEVEL: 'info' });
  await fanout.process.waitForOutput(/fanning out/);
  for (const [index, port] of gatewayPorts.entries()) {
    const gateway = await supervise(`gateway-${index}`, 'src/gateway/main.ts', { PORT: String(port), LOG_LEVEL: 'info' });
    await gateway.process.waitForOutput(/gateway listening/);
  }
  for (let user = 1; user <= USERS; user++) tokens.set(user, await mintToken(user));
}, 180_000);

afterAll(async () => {
  stopping = true;
  for (const client of clients.values()) client.socket?.ws.terminate();
  for (const role of roles.values()) role.stopping = true;
  await Promise.all([...roles.values()].map((role) => role.process.stop()));
  await pool?.end();
  await nats?.close();
  await postgres?.close();
  await rm(root, { recursive: true, force: true });
});

const messageRow = z.object({ id: z.string(), copies: z.coerce.number().int() });

describe('the pipeline under faults', () => {
  it('loses and repeats nothing acknowledged through role kills, a NATS restart and a Postgres restart', async () => {
    for (let user = 1; user <= USERS; user++) {
      const client: Client = { userId: user, gateway: user % 2, socket: null, cursor: null, events: [] };
      clients.set(user, client);
      void keepConnected(client);
    }
    await waitUntil('every client connected', () => Promise.resolve([...clients.values()].every((client) => client.socket !== null)), {
      timeoutMs: 20_000,
    });
    // Conversations are created once every client is connected, so each client's first event frame is its
    // conversation_created, and from then on it always has a cursor to resume from.
    for (let user = 1; user <= USERS; user += 2) {
      const created = await api(`http://127.0.0.1:${gatewayPorts[0]}`, 'POST', '/api/v1/chat/conversations', {
        token: tokens.get(user)!,
        body: { user_id: user + 1 },
      });
      const id = (created.body['data'] as { id: string }).id;
      conversationOf.set(user, id);
      conversationOf.set(user + 1, id);
    }
    await waitUntil('every client to have a cursor', () => Promise.resolve([...clients.values()].every((client) => client.cursor !== null)), {
      timeoutMs: 20_000,
    });
    const loading = load();
    const kill = (role: string) => () => Promise.resolve(roles.get(role)!.process.kill('SIGKILL'));
    const faults: [string, () => Promise<void>][] = [
      ['steady', () => Promise.resolve()],
      ['gateway killed', kill('gateway-0')],
      ['relay killed', kill('relay')],
      ['projector killed', kill('projector')],
      ['fan-out killed', kill('fanout')],
      ['nats-server restarted', () => nats.restart()],
      [
        'postgres restarted',
        async () => {
          await postgres.close();
          postgres = await startEmbeddedPostgres({ dataDir: path.join(root, 'postgres'), port: postgresPort, durable: false });
        },
      ],
    ];
    for (const [name, fault] of faults) {
      phase = name;
      await fault();
      await sleep(PHASE_SECONDS * 1_000);
    }
    phase = 'after';
    stopping = true;
    await loading;
    await sleep(6_000); // in-flight requests answer or time out

    const acknowledged = sent.filter((message): message is Sent & { id: string } => message.id !== undefined);
    const copies = async (table: 'events' | 'messages') => {
      const rows = await pool.any(
        table === 'events'
          ? sql.type(messageRow)`SELECT data->>'message_id' AS id, count(*) AS copies FROM events WHERE type = 'MessageSent' GROUP BY 1`
          : sql.type(messageRow)`SELECT id, count(*) AS copies FROM messages GROUP BY id`,
      );
      return new Map(rows.map((row) => [row.id, row.copies]));
    };
    await waitForLiveProjection(pool, 60_000);
    const delivered = (message: Sent & { id: string }) =>
      clients.get(message.recipient)!.events.filter((frame) => frame.type === 'new_message' && (frame['data'] as { id: string }).id === message.id).length;
    await waitUntil('every acknowledged message delivered', () => Promise.resolve(acknowledged.every((message) => delivered(message) > 0)), {
      timeoutMs: 30_000,
    }).catch(() => undefined); // the counts below say which
    const [logged, projected] = [await copies('events'), await copies('messages')];

    const report = [...new Set(sent.map((message) => message.phase))].map((name) => {
      const mine = acknowledged.filter((message) => message.phase === name);
      return {
        phase: name,
        sent: sent.filter((message) => message.phase === name).length,
        acknowledged: mine.length,
        stored: mine.filter((message) => logged.get(message.id) === 1).length,
        projected: mine.filter((message) => projected.get(message.id) === 1).length,
        delivered: mine.filter((message) => delivered(message) === 1).length,
        lost: mine.filter((message) => !logged.has(message.id) || !projected.has(message.id) || delivered(message) === 0).length,
        duplicated: mine.filter((message) => (logged.get(message.id) ?? 0) > 1 || (projected.get(message.id) ?? 0) > 1 || delivered(message) > 1)
          .length,
      };
    });
    console.log(`fault suite (${PHASE_SECONDS} s per phase)\n${report.map((row) => JSON.stringify(row)).join('\n')}`);
    console.log(`restarts: ${[...roles.values()].map((role) => `${role.name} ${role.restarts}`).join(', ')}`);
    // What a lost message's recipient saw around it: enough to tell a gap from a stop.
    const versionRow = z.object({ id: z.string(), version: z.number().int() });
    for (const message of acknowledged.filter((m) => delivered(m) === 0)) {
      const seq = await pool.maybeOne(sql.type(versionRow)`
        SELECT data->>'message_id' AS id, version FROM events WHERE data->>'message_id' = ${message.id}`);
      const seen = clients.get(message.recipient)!.events.map((frame) => `${String(frame['seq'])}:${frame.type}`);
      console.log(`lost ${message.id} (seq ${seq?.version}) ${message.phase}, ${message.sender} -> ${message.recipient} on gateway ${clients.get(message.recipient)!.gateway}; recipient saw ${seen.join(' ')}`);
    }

    for (const row of report) {
      expect(row, row.phase).toMatchObject({ lost: 0, duplicated: 0 });
      expect(row.acknowledged, row.phase).toBeGreaterThan(0);
    }
    // In seq order per conversation, for every user, across reconnections.
    for (const client of clients.values()) {
      const seqs = client.events.filter((frame) => frame['conversation_id'] === conversationOf.get(client.userId)).map((frame) => frame['seq'] as number);
      expect(seqs, `user ${client.userId}`).toEqual([...seqs].sort((a, b) => a - b));
      expect(new Set(seqs).size, `user ${client.userId}: repeated seq`).toBe(seqs.length);
    }
  }, 300_000);
});
