import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from 'nats';
import type { DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  sendMessage,
  startConversation,
  type CommandDeps,
} from '../../src/commands/conversation/conversation-commands.js';
import { LIVE_TABLES } from '../../src/projections/conversation/apply-conversation-events.js';
import { createDatabasePool } from '../../src/shared/database.js';
import { sleep } from '../../src/shared/sleep.js';
import { getFreePorts } from '../../stack/free-port.js';
import { startNatsCluster, type NatsCluster } from '../../stack/nats-server.js';
import { readWholeLog } from '../support/event-log.js';
import { createTestDatabase, natsUsers, testPrefix, testRoleEnv } from '../support/infra.js';
import { connectTestNats, readAllStored } from '../support/jetstream.js';
import { spawnRole, stopAllRoles } from '../support/processes.js';
import { foldReadModel, readModel, waitForLiveProjection } from '../support/read-model.js';
import { waitUntil } from '../support/wait-until.js';

/**
 * JetStream as a three-node cluster on loopback, the stream replicated three times; the node leading the
 * stream is killed with SIGKILL under steady writes, then started again. Checked from the outside: every
 * acknowledged command's event is stored in JetStream exactly once and projected exactly once.
 */

let storeDir: string;
let cluster: NatsCluster;
let nc: NatsConnection;
let pool: DatabasePool;
let env: Record<string, string>;

beforeAll(async () => {
  storeDir = await mkdtemp(path.join(tmpdir(), 'matcha-nats-cluster-'));
  const ports = await getFreePorts(6);
  cluster = await startNatsCluster({ storeDir, clientPorts: ports.slice(0, 3), routePorts: ports.slice(3), users: natsUsers() });
  nc = await connectTestNats(cluster.url);
  // The client ports open before the JetStream meta leader is elected.
  await waitUntil(
    'JetStream to elect its meta leader',
    () => nc.jetstreamManager().then((jsm) => jsm.getAccountInfo()).then(() => true, () => false),
    { timeoutMs: 30_000 },
  );
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  env = {
    ...testRoleEnv({ databaseUrl, prefix }),
    NATS_URL: cluster.url,
    NATS_STREAM_REPLICAS: '3',
    PROJECTOR_ACK_WAIT_MS: '1000',
    LOG_LEVEL: 'warn',
  };
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 6 });
  await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
  await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env });
}, 60_000);

afterAll(async () => {
  await stopAllRoles();
  await nc?.close();
  await pool?.end();
  await cluster?.close();
  await rm(storeDir, { recursive: true, force: true });
});

describe('a three-node JetStream cluster', () => {
  it('loses and repeats nothing when the node leading the stream is killed under load and comes back', async () => {
    const deps: CommandDeps = { pool, clock: () => new Date(), newId: monotonicFactory() };
    const conversations = await Promise.all(
      Array.from({ length: 10 }, (_, index) => startConversation(deps, { initiatorId: 2 * index + 1, otherUserId: 2 * index + 2 })),
    );
    let acknowledged = 0;
    let stop = false;
    const writer = (async () => {
      for (let i = 0; !stop; i++) {
        const { conversationId } = conversations[i % conversations.length]!;
        await sendMessage(deps, { conversationId, senderId: 2 * (i % conversations.length) + 1, content: `m${i}` });
        acknowledged++;
        await sleep(10);
      }
    })();

    try {
      const jsm = await nc.jetstreamManager();
      // The relay creates the stream when it starts.
      await waitUntil('the relay to create the stream', () => jsm.streams.info(env['NATS_STREAM']!).then(() => true, () => false));
      await sleep(2_000);
      const leader = (await jsm.streams.info(env['NATS_STREAM']!)).cluster?.leader;
      const victim = cluster.nodes[Number(leader?.slice(1)) - 1];
      expect(victim, `stream leader ${leader}`).toBeDefined();
      victim!.kill('SIGKILL');
      await victim!.exited();
      await sleep(4_000);
      await victim!.restart();
      await sleep(2_000);
    } finally {
      // Also when a step above fails: no write may outlive the pool.
      stop = true;
      await writer;
    }

    const log = await readWholeLog(pool);
    expect(log.length).toBe(conversations.length + acknowledged);
    await waitForLiveProjection(pool, 60_000);
    expect(await readModel(pool, LIVE_TABLES)).toEqual(foldReadModel(log));
    await waitUntil('JetStream to hold every event', async () => (await readAllStored(nc, env['NATS_STREAM']!)).length >= log.length, {
      timeoutMs: 60_000,
    });
    const stored = await readAllStored(nc, env['NATS_STREAM']!);
    expect(stored.map((message) => message.event_id).sort()).toEqual(log.map((event) => event.eventId).sort());
  }, 120_000);
});
