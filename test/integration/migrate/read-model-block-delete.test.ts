import { randomInt } from 'node:crypto';
import { copyFile, mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { migrate, MIGRATIONS_DIR } from '../../../src/shared/migrate.js';

/**
 * Migration 006 on a database that already has read tables in use: a live generation with rows, and a
 * half-built one the replay CLI would resume. Both get the new columns, the views show them, and rows
 * projected before know which message their last_message_content came from.
 */

const MIGRATION = '006-read-model-block-delete.sql';
let database: string | undefined;
let dir: string | undefined;

async function withClient<T>(url: string, use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
  if (database) await withClient(inject('infra').postgresAdminUrl, (client) => client.query(`DROP DATABASE IF EXISTS ${database} WITH (FORCE)`));
});

const columns = (client: pg.Client, table: string) =>
  client
    .query<{ column_name: string; is_nullable: string }>(
      'SELECT column_name, is_nullable FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position',
      [table],
    )
    .then((result) => Object.fromEntries(result.rows.map((row) => [row.column_name, row.is_nullable === 'YES'])));

describe(`migration ${MIGRATION}`, () => {
  it('adds the columns to the active and the building generation, recreates the views, and backfills last_message_version', async () => {
    database = `migrate_${randomInt(1e9)}`;
    await withClient(inject('infra').postgresAdminUrl, (client) => client.query(`CREATE DATABASE ${database}`));
    const url = `${inject('infra').postgresBaseUrl}/${database}`;
    dir = await mkdtemp(path.join(tmpdir(), 'matcha-migrations-'));
    const files = (await readdir(MIGRATIONS_DIR)).filter((file) => file.endsWith('.sql')).sort();
    for (const file of files.filter((name) => name < MIGRATION)) await copyFile(path.join(MIGRATIONS_DIR, file), path.join(dir, file));
    await migrate(url, dir);

    await withClient(url, async (client) => {
      await client.query(`
        INSERT INTO discussion (id, user1_id, user2_id, last_message_content, last_message_at, created_at, updated_at,
                                version, last_activity_at)
        VALUES ('c1', 1, 2, 'newest', now(), now(), now(), 3, now()), ('c2', 3, 4, NULL, NULL, now(), now(), 1, now());
        INSERT INTO messages (id, conv_id, sender_id, msg, time, version)
        VALUES ('m1', 'c1', 1, 'oldest', now(), 2), ('m2', 'c1', 2, 'newest', now(), 3);
        CREATE TABLE discussion_g2 (LIKE discussion_g1 INCLUDING ALL);
        CREATE TABLE messages_g2 (LIKE messages_g1 INCLUDING ALL);
        UPDATE read_model_generations SET building = 2, building_started_at = now();`);
    });

    await copyFile(path.join(MIGRATIONS_DIR, MIGRATION), path.join(dir, MIGRATION));
    expect(await migrate(url, dir)).toEqual([MIGRATION]);

    await withClient(url, async (client) => {
      for (const table of ['discussion', 'discussion_g1', 'discussion_g2']) {
        expect(await columns(client, table)).toMatchObject({ blocked_by: true, last_message_version: true });
      }
      for (const table of ['messages', 'messages_g1', 'messages_g2']) {
        expect(await columns(client, table)).toMatchObject({ msg: true, deleted_at: true });
      }
      const backfilled = await client.query('SELECT id, last_message_version, blocked_by FROM discussion ORDER BY id');
      expect(backfilled.rows).toEqual([
        { id: 'c1', last_message_version: 3, blocked_by: null },
        { id: 'c2', last_message_version: null, blocked_by: null },
      ]);
      // A tombstone can be written through the view.
      await client.query(`UPDATE messages SET msg = NULL, deleted_at = now() WHERE id = 'm2'`);
      expect((await client.query(`SELECT msg FROM messages_g1 WHERE id = 'm2'`)).rows).toEqual([{ msg: null }]);
    });
  });
});
