import type { NatsConnection, Subscription } from 'nats';
import { sql, type DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sendMessage, type CommandDeps } from '../../../src/commands/conversation/conversation-commands.js';
import { LIVE_TABLES } from '../../../src/projections/conversation/apply-conversation-events.js';
import { listConversations, listMessages } from '../../../src/projections/conversation/queries.js';
import {
  CONVERSATIONS_PROJECTION,
  generationTables,
  readGenerations,
} from '../../../src/projections/read-model-generations.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { sleep } from '../../../src/shared/sleep.js';
import { seedConversationLog } from '../../support/conversation-log.js';
import { readWholeLog } from '../../support/event-log.js';
import { createTestDatabase, natsUrl, testPrefix, testRoleEnv } from '../../support/infra.js';
import { connectTestNats, storedCount } from '../../support/jetstream.js';
import { spawnRole, stopAllRoles } from '../../support/processes.js';
import { foldReadModel, projectedEventCount, readModel, waitForLiveProjection } from '../../support/read-model.js';
import { waitUntil } from '../../support/wait-until.js';

const CONVERSATIONS = 1_000;
const EVENTS_PER_CONVERSATION = 100;
const TOTAL_EVENTS = CONVERSATIONS * EVENTS_PER_CONVERSATION;

let pool: DatabasePool;
let nc: NatsConnection;
let env: Record<string, string>;
let prefix: string;
let seeded: Awaited<ReturnType<typeof seedConversationLog>>;
let deps: CommandDeps;

function replay(args: readonly string[], name = 'replay') {
  return spawnRole({ name, entry: 'src/replay/main.ts', env, args });
}

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  prefix = testPrefix();
  env = {
    ...testRoleEnv({ databaseUrl, prefix }),
    LOG_LEVEL: 'warn',
  };
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 8 });
  nc = await connectTestNats(natsUrl());
  deps = { pool, clock: () => new Date(), newId: monotonicFactory() };
  seeded = await seedConversationLog(pool, {
    conversations: CONVERSATIONS,
    eventsPerConversation: EVENTS_PER_CONVERSATION,
    firstUserId: 1_000,
  });
  await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env });
  await spawnRole({ name: 'projector', entry: 'src/projections/main.ts', env });
  await waitForLiveProjection(pool);
}, 300_000);

afterAll(async () => {
  await stopAllRoles();
  await nc.close();
  await pool.end();
});

describe('the replay CLI', () => {
  it('prints its usage with --help and refuses unknown options', async () => {
    const help = await replay(['--help']);
    expect(await help.exited).toBe(0);
    expect(help.output()).toMatch(/Usage: npm run replay/);
    const bad = await replay(['--projection', 'nope']);
    expect(await bad.exited).toBe(2);
    expect(bad.output()).toMatch(/--projection must be one of conversations, all/);
  });

  it('rebuilds 100,000 events into tables --verify finds equal, switches while queries never fail or see partial data, and the projector carries on', async () => {
    expect(await projectedEventCount(pool)).toBe(TOTAL_EVENTS);
    // Queries of users whose conversations do not change during the test: every answer must equal this one.
    const watched = seeded.slice(0, 20).map(({ id, users }) => ({ id, user: users[0] }));
    const expected = new Map<number, unknown>();
    for (const { id, user } of watched) {
      expected.set(user, [await listConversations(pool, user), await listMessages(pool, user, id, { limit: 50, offset: 0 })]);
    }
    let stop = false;
    let queries = 0;
    const failures: string[] = [];
    const readers = Array.from({ length: 3 }, async () => {
      while (!stop) {
        for (const { id, user } of watched) {
          try {
            const answer = [await listConversations(pool, user), await listMessages(pool, user, id, { limit: 50, offset: 0 })];
            if (JSON.stringify(answer) !== JSON.stringify(expected.get(user))) failures.push(`user ${user}: partial or changed answer`);
          } catch (error) {
            failures.push(`user ${user}: ${String(error)}`);
          }
          queries++;
        }
      }
    });
    // Meanwhile a conversation outside the watched set keeps receiving messages through relay and projector.
    const busy = seeded.at(-1)!;
    let sent = 0;
    const writer = (async () => {
      while (!stop) {
        await sendMessage(deps, { conversationId: busy.id, senderId: busy.users[sent % 2]!, content: `during replay ${sent}` });
        sent++;
        await sleep(20);
      }
    })();

    const run = await replay(['--verify']);
    const code = await run.exited;
    stop = true;
    await Promise.all([...readers, writer]);

    expect(code, run.output()).toBe(0);
    expect(run.output()).toMatch(/conversations: generation 2 built from \d+ events/);
    expect(run.output()).toMatch(/verify: discussion: 0 rows differ; messages: 0 rows differ/);
    expect(run.output()).toMatch(/reads switched to generation 2; generation 1 dropped/);
    // Plain progress lines, since the output is not a terminal.
    expect(run.output()).toMatch(/replay conversations \(generation 2\): \d+\/\d+ events \([\d.]+%\), \d+ events\/s, ETA/);
    expect(failures).toEqual([]);
    expect(queries).toBeGreaterThan(100);
    expect(sent).toBeGreaterThan(0);
    expect(await readGenerations(pool, CONVERSATIONS_PROJECTION)).toEqual({ active: 2, building: null });

    // The live projector goes on writing, now into generation 2, from the right place.
    for (let i = 0; i < 10; i++) {
      await sendMessage(deps, { conversationId: busy.id, senderId: busy.users[i % 2]!, content: `after the switch ${i}` });
    }
    await waitForLiveProjection(pool);
    expect(await readModel(pool, LIVE_TABLES)).toEqual(foldReadModel(await readWholeLog(pool)));
    expect(await readModel(pool, generationTables(2))).toEqual(await readModel(pool, LIVE_TABLES));
    const gone = await pool.anyFirst(sql.type(z.object({ name: z.string() }))`
      SELECT tablename AS name FROM pg_tables WHERE tablename IN ('discussion_g1', 'messages_g1')`);
    expect(gone).toEqual([]);
  }, 300_000);

  it('resumes a replay killed midway, publishes nothing, and finishes with the same tables', async () => {
    await waitForLiveProjection(pool);
    const before = await readModel(pool, LIVE_TABLES);
    const streamMessages = await storedCount(nc, env['NATS_STREAM']!);
    const published: string[] = [];
    const subscription: Subscription = nc.subscribe(`${prefix}.>`, { callback: (_, message) => published.push(message.subject) });

    const first = await replay(['--batch-size', '100'], 'replay-killed');
    const checkpoint = z.object({ done: z.boolean() });
    await waitUntil('the replay to commit a few batches', async () =>
      pool.oneFirst(sql.type(checkpoint)`
        SELECT count(*) > 0 AS done FROM feed_checkpoints
        WHERE consumer = 'replay:conversations:g3' AND global_position > 20000`),
    );
    first.kill('SIGKILL');
    await first.exited;
    expect(await readGenerations(pool, CONVERSATIONS_PROJECTION)).toEqual({ active: 2, building: 3 });

    const second = await replay(['--verify'], 'replay-resumed');
    expect(await second.exited, second.output()).toBe(0);
    const resumed = /generation 3 resumed and built from (\d+) events/.exec(second.output());
    expect(resumed, second.output()).not.toBeNull();
    expect(Number(resumed![1])).toBeLessThan(TOTAL_EVENTS);
    expect(second.output()).toMatch(/verify: discussion: 0 rows differ; messages: 0 rows differ/);
    expect(await readGenerations(pool, CONVERSATIONS_PROJECTION)).toEqual({ active: 3, building: null });
    expect(await readModel(pool, LIVE_TABLES)).toEqual(before);

    await nc.flush();
    subscription.unsubscribe();
    expect(published).toEqual([]);
    expect(await storedCount(nc, env['NATS_STREAM']!)).toBe(streamMessages);
  }, 300_000);
});
