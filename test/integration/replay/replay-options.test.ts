import pg from 'pg';
import { sql, type DatabasePool } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LIVE_TABLES } from '../../../src/projections/conversation/apply-conversation-events.js';
import {
  CONVERSATIONS_PROJECTION,
  generationTables,
  readGenerations,
} from '../../../src/projections/read-model-generations.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { seedConversationLog } from '../../support/conversation-log.js';
import { readWholeLog } from '../../support/event-log.js';
import { createTestDatabase, testPrefix, testRoleEnv } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { foldReadModel, readModel } from '../../support/read-model.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * The replay CLI's options and exit codes, on a small log and no live projector: the live tables hold
 * exactly what the test put there, so a difference the test plants is the only one there is.
 */

const CONVERSATIONS = 30;
const EVENTS_PER_CONVERSATION = 20;
const TOTAL_EVENTS = CONVERSATIONS * EVENTS_PER_CONVERSATION;

let pool: DatabasePool;
let env: Record<string, string>;
let conversations: Awaited<ReturnType<typeof seedConversationLog>>;

async function replay(args: readonly string[], name = 'replay'): Promise<{ code: number | null; output: string; process: RoleProcess }> {
  const process = await spawnRole({ name, entry: 'src/replay/main.ts', env, args });
  const code = await process.exited;
  return { code, output: process.output(), process };
}

const generations = () => readGenerations(pool, CONVERSATIONS_PROJECTION);

const tableRow = z.object({ name: z.string() });
async function tableExists(name: string): Promise<boolean> {
  return pool.exists(sql.type(tableRow)`SELECT tablename AS name FROM pg_tables WHERE tablename = ${name}`);
}

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  env = { ...testRoleEnv({ databaseUrl, prefix: testPrefix() }), LOG_LEVEL: 'warn' };
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 4 });
  conversations = await seedConversationLog(pool, {
    conversations: CONVERSATIONS,
    eventsPerConversation: EVENTS_PER_CONVERSATION,
    firstUserId: 1,
  });
  // A first replay without --verify fills the live tables (generation 2) from the log.
  const first = await replay([]);
  expect(first.code, first.output).toBe(0);
  expect(await generations()).toEqual({ active: 2, building: null });
}, 120_000);

afterAll(async () => {
  await stopAllRoles();
  await pool.end();
});

describe('the replay CLI options', () => {
  it('--verify on tables that differ: exit 1, each difference printed, reads not switched', async () => {
    const [tampered, shortened] = conversations;
    const live = generationTables(2);
    await pool.query(sql.unsafe`
      UPDATE ${sql.identifier([live.discussion])} SET last_message_content = 'tampered' WHERE id = ${tampered!.id}`);
    const messageRow = z.object({ id: z.string(), msg: z.string() });
    const [removed, altered] = await pool.any(sql.type(messageRow)`
      SELECT id, msg FROM ${sql.identifier([live.messages])} WHERE conv_id = ${shortened!.id} ORDER BY version LIMIT 2`);
    await pool.query(sql.unsafe`DELETE FROM ${sql.identifier([live.messages])} WHERE id = ${removed!.id}`);
    await pool.query(sql.unsafe`UPDATE ${sql.identifier([live.messages])} SET msg = 'altered' WHERE id = ${altered!.id}`);
    const before = await readModel(pool, LIVE_TABLES);

    const run = await replay(['--verify']);
    expect(run.code, run.output).toBe(1);
    expect(run.output).toMatch(/conversations: generation 3 built from 600 events/);
    expect(run.output).toMatch(/verify: discussion: 1 rows differ; messages: 2 rows differ/);
    expect(run.output).toContain(`discussion ${tampered!.id}: last_message_content: live "tampered", rebuilt "`);
    expect(run.output).toContain(`messages ${removed!.id}: only in the rebuilt tables`);
    expect(run.output).toContain(`messages ${altered!.id}: msg: live "altered", rebuilt ${JSON.stringify(altered!.msg)}`);
    expect(run.output).toMatch(/reads NOT switched \(differences found; --force switches anyway\)/);
    expect(await generations()).toEqual({ active: 2, building: 3 });
    expect(await readModel(pool, LIVE_TABLES)).toEqual(before);
  });

  it('--verify --force switches despite the differences, to tables equal to a fold of the log', async () => {
    const run = await replay(['--verify', '--force']);
    // Differences were found (exit code 1), and reads moved anyway.
    expect(run.code, run.output).toBe(1);
    expect(run.output).toMatch(/generation 3 resumed and built from 0 events/);
    expect(run.output).toMatch(/verify: discussion: 1 rows differ; messages: 2 rows differ/);
    expect(run.output).toMatch(/reads switched to generation 3; generation 2 dropped/);
    expect(await generations()).toEqual({ active: 3, building: null });
    expect(await readModel(pool, LIVE_TABLES)).toEqual(foldReadModel(await readWholeLog(pool)));
    expect(await tableExists('discussion_g2')).toBe(false);
  });

  it('--no-switch builds and verifies only; the next run resumes that generation and switches', async () => {
    const build = await replay(['--verify', '--no-switch']);
    expect(build.code, build.output).toBe(0);
    expect(build.output).toMatch(/generation 4 built from 600 events/);
    expect(build.output).toMatch(/verify: discussion: 0 rows differ; messages: 0 rows differ/);
    expect(build.output).toMatch(/reads not switched \(--no-switch\); a later run resumes and switches generation 4/);
    expect(await generations()).toEqual({ active: 3, building: 4 });

    const next = await replay([]);
    expect(next.code, next.output).toBe(0);
    expect(next.output).toMatch(/generation 4 resumed and built from 0 events/);
    expect(next.output).toMatch(/reads switched to generation 4; generation 3 dropped/);
    expect(await generations()).toEqual({ active: 4, building: null });
  });

  it('--restart drops a half-built generation and builds a new one from the start', async () => {
    const half = await replay(['--no-switch']);
    expect(half.code, half.output).toBe(0);
    expect(await generations()).toEqual({ active: 4, building: 5 });

    const restarted = await replay(['--restart', '--no-switch']);
    expect(restarted.code, restarted.output).toBe(0);
    expect(restarted.output).toMatch(new RegExp(`generation 6 built from ${TOTAL_EVENTS} events`));
    expect(await generations()).toEqual({ active: 4, building: 6 });
    expect(await tableExists('discussion_g5')).toBe(false);
    expect(await tableExists('messages_g5')).toBe(false);
    expect(await readModel(pool, generationTables(6))).toEqual(await readModel(pool, LIVE_TABLES));
  });

  it('refuses a second replay of the same projection while one runs (exit code 3), and the first finishes', async () => {
    // Live projector writes hold the generation row FOR SHARE; here the test holds it FOR UPDATE, so the first
    // replay builds, then waits at its switch, holding the replay lock all along.
    const holder = new pg.Client({ connectionString: env['DATABASE_URL'] });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT * FROM read_model_generations WHERE projection = 'conversations' FOR UPDATE`);
      const first = await spawnRole({ name: 'replay-first', entry: 'src/replay/main.ts', env, args: ['--restart'] });
      const waiting = z.object({ waiting: z.boolean() });
      await waitUntil('the first replay to wait at its switch', () =>
        pool.oneFirst(sql.type(waiting)`
          SELECT count(*) > 0 AS waiting FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%read_model_generations%'`),
      );

      const second = await replay(['--verify'], 'replay-second');
      expect(second.code, second.output).toBe(3);
      expect(second.output).toMatch(/replay failed: another replay of conversations is running/);

      await holder.query('COMMIT');
      expect(await first.exited, first.output()).toBe(0);
      expect(first.output()).toMatch(new RegExp(`generation 7 built from ${TOTAL_EVENTS} events`));
      expect(first.output()).toMatch(/reads switched to generation 7/);
    } finally {
      await holder.end();
    }
  });
});
