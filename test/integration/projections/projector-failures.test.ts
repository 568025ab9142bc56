import type { NatsConnection } from 'nats';
import { sql, type DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  sendMessage,
  startConversation,
  type CommandDeps,
} from '../../../src/commands/conversation/conversation-commands.js';
import { readStream } from '../../../src/event-store/read-stream.js';
import type { RecordedEvent } from '../../../src/event-store/recorded-event.js';
import { LIVE_TABLES } from '../../../src/projections/conversation/apply-conversation-events.js';
import {
  CONVERSATIONS_PROJECTION,
  generationTables,
  readGenerations,
} from '../../../src/projections/read-model-generations.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { readWholeLog } from '../../support/event-log.js';
import { createTestDatabase, natsUrl, testPrefix, testRoleEnv } from '../../support/infra.js';
import { connectTestNats, waitForStoredCount } from '../../support/jetstream.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { foldReadModel, readModel } from '../../support/read-model.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * The projector's failure paths, provoked from outside: a CHECK constraint the test adds to the live
 * messages table refuses one message ('poison'), as a bug or a bad row would, while every other event is fine.
 */

const MAX_ATTEMPTS = 5;

let pool: DatabasePool;
let nc: NatsConnection;
let env: Record<string, string>;
let deps: CommandDeps;
let projector: RoleProcess;
let relay: RoleProcess;
let opsPort: number;
/** Conversations between users 1..8, created before the projector starts. */
const conversations: { id: string; users: [number, number] }[] = [];

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  env = { ...testRoleEnv({ databaseUrl, prefix: testPrefix() }), LOG_LEVEL: 'warn' };
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 6 });
  nc = await connectTestNats(natsUrl());
  deps = { pool, clock: () => new Date(), newId: monotonicFactory() };
  const { active } = await readGenerations(pool, CONVERSATIONS_PROJECTION);
  await pool.query(sql.unsafe`
    ALTER TABLE ${sql.identifier([generationTables(active).messages])} ADD CONSTRAINT poison_refused CHECK (msg <> 'poison')`);
  relay = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
});

afterAll(async () => {
  await stopAllRoles();
  await nc.close();
  await pool.end();
});

async function redeliveries(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${opsPort}/metrics`)).text();
  const line = text.split('\n').find((candidate) => candidate.startsWith('chat_consumer_redeliveries_total{'));
  return line ? Number(line.split(' ').at(-1)) : 0;
}

const versionRow = z.object({ version: z.number().int() });
async function projectedVersion(conversationId: string): Promise<number> {
  return (await pool.maybeOneFirst(sql.type(versionRow)`SELECT version FROM discussion WHERE id = ${conversationId}`)) ?? 0;
}

let sentinelConversation: string | undefined;
/** The barrier: a message in a conversation of its own, projected after everything before it was handled. */
async function projectedUpToASentinel(): Promise<void> {
  sentinelConversation ??= (await startConversation(deps, { initiatorId: 901, otherUserId: 902 })).conversationId;
  const conversationId = sentinelConversation;
  const sent = await sendMessage(deps, { conversationId, senderId: 901, content: 'sentinel' });
  await waitUntil('the sentinel to be projected', async () => (await projectedVersion(conversationId)) >= sent.version);
}

const failureRow = z.object({ event_id: z.string(), attempts: z.number().int(), error: z.string() });
async function recordedFailures() {
  return pool.any(sql.type(failureRow)`SELECT event_id, attempts, error FROM projection_failures ORDER BY event_id`);
}

/** The log without the events the projector gave up on: what the read tables must equal. */
async function expectTablesToFoldTheLogWithout(failed: readonly RecordedEvent[]): Promise<void> {
  const ids = new Set(failed.map((event) => event.eventId));
  const log = (await readWholeLog(pool)).filter((event) => !ids.has(event.eventId));
  expect(await readModel(pool, LIVE_TABLES)).toEqual(foldReadModel(log));
}

let poisoned: RecordedEvent;

describe('the projector when an event fails', { timeout: 120_000 }, () => {
  it('applies the rest of a failed batch one by one, retries the bad event, then records it', async () => {
    for (let i = 0; i < 6; i++) {
      const users: [number, number] = [2 * i + 1, 2 * i + 2];
      const { conversationId } = await startConversation(deps, { initiatorId: users[0], otherUserId: users[1] });
      conversations.push({ id: conversationId, users });
      for (let m = 0; m < 5; m++) await sendMessage(deps, { conversationId, senderId: users[m % 2]!, content: `m${m}` });
    }
    // The bad event sits in the middle of the log: good events come before and after it, in one batch.
    const victim = conversations[2]!;
    await sendMessage(deps, { conversationId: victim.id, senderId: victim.users[0], content: 'poison' });
    poisoned = (await readStream(pool, victim.id)).at(-1)!;
    for (const { id, users } of conversations.slice(3)) await sendMessage(deps, { conversationId: id, senderId: users[1], content: 'after' });
    const logLength = (await readWholeLog(pool)).length;
    await waitForStoredCount(nc, env['NATS_STREAM']!, logLength).catch((error: unknown) => {
      throw new Error(`${String(error)}; the relay printed:\n${relay.output()}`);
    });

    // Everything already in the stream arrives within the batch wait: the first batch holds it all.
    projector = await spawnRole({
      name: 'projector',
      entry: 'src/projections/main.ts',
      env: {
        ...env,
        LOG_LEVEL: 'info',
        PROJECTOR_BATCH_WAIT_MS: '1000',
        PROJECTOR_MAX_ATTEMPTS: String(MAX_ATTEMPTS),
        // Longer than the test: a good event that was not acked would not come back within it.
        PROJECTOR_ACK_WAIT_MS: '120000',
      },
    });
    opsPort = Number(/(\d+)$/.exec(await projector.waitForOutput(/ops server on port \d+/))?.[1]);
    await projector.waitForOutput(/batch failed; applying its events one by one/);
    await waitUntil('the bad event to be recorded', async () => (await recordedFailures()).length > 0);
    await projectedUpToASentinel();

    const [failure, ...others] = await recordedFailures();
    expect(others).toEqual([]);
    expect(failure).toMatchObject({ event_id: poisoned.eventId, attempts: MAX_ATTEMPTS });
    expect(failure!.error).toMatch(/check integrity constraint/);
    expect(projector.output()).toMatch(/projection failed for good: recorded/);
    // Only the bad event came back: every other event of the failed batch was applied and acked at once.
    expect(await redeliveries()).toBe(MAX_ATTEMPTS - 1);
    await expectTablesToFoldTheLogWithout([poisoned]);
  });

  it('naks an event that fails and applies it on a later delivery once the cause is gone', async () => {
    const target = conversations[4]!;
    const before = await redeliveries();
    await sendMessage(deps, { conversationId: target.id, senderId: target.users[1], content: 'poison' });
    const retried = (await readStream(pool, target.id)).at(-1)!;
    await projector.waitForOutput(new RegExp(`"eventId":"${retried.eventId}"[^\\n]*projection failed; will retry`));

    const { active } = await readGenerations(pool, CONVERSATIONS_PROJECTION);
    await pool.query(sql.unsafe`
      ALTER TABLE ${sql.identifier([generationTables(active).messages])} DROP CONSTRAINT poison_refused`);
    await waitUntil('the retried event to be projected', async () => (await projectedVersion(target.id)) >= retried.version, {
      timeoutMs: 30_000,
    });
    await projectedUpToASentinel();

    expect((await recordedFailures()).map((failure) => failure.event_id)).toEqual([poisoned.eventId]);
    expect(await redeliveries()).toBeGreaterThan(before);
    await expectTablesToFoldTheLogWithout([poisoned]);
  });
});
