import { sql, type DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  sendMessage,
  startConversation,
  type CommandDeps,
} from '../../../src/commands/conversation/conversation-commands.js';
import { LIVE_TABLES } from '../../../src/projections/conversation/apply-conversation-events.js';
import { listMessages } from '../../../src/projections/conversation/queries.js';
import { awaitReadConsistency } from '../../../src/projections/read-consistency.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { eventSubject } from '../../../src/shared/nats.js';
import { seedConversationLog } from '../../support/conversation-log.js';
import { readWholeLog } from '../../support/event-log.js';
import { createTestDatabase, natsUrl, testPrefix, testRoleEnv } from '../../support/infra.js';
import { connectTestNats } from '../../support/jetstream.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { foldReadModel, projectedEventCount, readModel, waitForLiveProjection } from '../../support/read-model.js';
import { waitUntil } from '../../support/wait-until.js';

let pool: DatabasePool;
let env: Record<string, string>;
let prefix: string;
/** The projector left running by the first test, for the ones after it. */
let liveProjector: RoleProcess;

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  prefix = testPrefix();
  env = {
    ...testRoleEnv({ databaseUrl, prefix }),
    LOG_LEVEL: 'warn',
  };
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 8 });
  await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
});

afterAll(async () => {
  await stopAllRoles();
  await pool.end();
});

function startProjector(): Promise<RoleProcess> {
  return spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env: { ...env, PROJECTOR_BATCH_SIZE: '50', PROJECTOR_ACK_WAIT_MS: '1000' } });
}

describe('the projector process', () => {
  it('killed with SIGKILL in the middle of its batches, again and again, ends with the tables a fold of the log gives', async () => {
    await seedConversationLog(pool, { conversations: 100, eventsPerConversation: 100, firstUserId: 100_000 });
    const total = (await readWholeLog(pool)).length;
    for (const fraction of [0.2, 0.45, 0.7]) {
      const projector = await startProjector();
      await waitUntil(`${fraction * 100}% of the events projected`, async () => (await projectedEventCount(pool)) >= total * fraction);
      projector.kill('SIGKILL');
      await projector.exited;
    }
    expect(await projectedEventCount(pool)).toBeLessThan(total);
    liveProjector = await startProjector();
    await waitForLiveProjection(pool);
    expect(await readModel(pool, LIVE_TABLES)).toEqual(foldReadModel(await readWholeLog(pool)));
  }, 180_000);

  it('lets either participant read a message right after it was sent (read consistency), 300 times in a row', async () => {
    await waitForLiveProjection(pool);
    const deps: CommandDeps = { pool, clock: () => new Date(), newId: monotonicFactory() };
    const [alice, bob] = [7, 8];
    const { conversationId } = await startConversation(deps, { initiatorId: alice, otherUserId: bob });
    let waited = 0;
    for (let i = 0; i < 300; i++) {
      const sender = i % 2 === 0 ? alice : bob;
      // The reader alternates too: the sender itself, then the recipient, who wrote nothing.
      const reader = i % 4 < 2 ? sender : sender === alice ? bob : alice;
      // What the gateway does: answer the command; before any query, wait (bounded) until the read tables
      // have reached the log's head of the conversations read.
      const sent = await sendMessage(deps, { conversationId, senderId: sender, content: `rc ${i}` });
      const projectedAlready = (await projectedVersionOf(conversationId)) >= sent.version;
      expect(await awaitReadConsistency(pool, { userId: reader, conversationId }, { timeoutMs: 5_000 })).toBe(true);
      if (!projectedAlready) waited++;
      const page = await listMessages(pool, reader, conversationId, { limit: 1, offset: 0 });
      expect(Array.isArray(page) && page[0]?.id).toBe(sent.id);
    }
    // The wait did real work: without it, some reads would have come before the projection.
    expect(waited).toBeGreaterThan(0);
  }, 120_000);
  it('records an event it cannot apply, after its retries, in projection_failures and its log, and goes on', async () => {
    const nc = await connectTestNats(natsUrl());
    try {
      const conversationId = monotonicFactory()();
      // A MessageSent whose data no longer parses: what a bug or a bad migration of events would deliver.
      const broken = {
        event_id: monotonicFactory()(),
        stream_id: conversationId,
        version: 1,
        type: 'MessageSent',
        data: { message_id: 42 },
        metadata: {},
        created_at: new Date().toISOString(),
        position: '1:1',
      };
      await nc.jetstream().publish(eventSubject(prefix, conversationId), JSON.stringify(broken));
      const failures = z.object({ stream_id: z.string(), attempts: z.number().int(), error: z.string() });
      await waitUntil('the failure to be recorded', async () =>
        (await pool.exists(sql.type(failures)`SELECT stream_id, attempts, error FROM projection_failures WHERE event_id = ${broken.event_id}`)),
      );
      const row = await pool.one(sql.type(failures)`
        SELECT stream_id, attempts, error FROM projection_failures WHERE event_id = ${broken.event_id}`);
      expect(row).toMatchObject({ stream_id: conversationId, attempts: 5 });
      expect(row.error).toMatch(/message_id|sender_id|content/);
      await liveProjector.waitForOutput(/projection failed for good: recorded/);
      // The events after it are still projected.
      const deps: CommandDeps = { pool, clock: () => new Date(), newId: monotonicFactory() };
      const started = await startConversation(deps, { initiatorId: 901, otherUserId: 902 });
      await sendMessage(deps, { conversationId: started.conversationId, senderId: 901, content: 'after the failure' });
      await waitForLiveProjection(pool);
    } finally {
      await nc.close();
    }
  }, 60_000);
});

const versionRow = z.object({ version: z.number().int() });
async function projectedVersionOf(conversationId: string): Promise<number> {
  return (await pool.maybeOneFirst(sql.type(versionRow)`SELECT version FROM discussion WHERE id = ${conversationId}`)) ?? 0;
}
