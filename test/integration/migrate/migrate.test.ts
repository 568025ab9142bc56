import { createHash, randomInt } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { migrate, MigrationChecksumError } from '../../../src/shared/migrate.js';

/** The runner against a real Postgres, on empty databases of its own and migrations in a temporary folder. */

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');
const databases: string[] = [];
let dir: string;

async function admin<T>(use: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: inject('infra').postgresAdminUrl });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

async function emptyDatabase(): Promise<string> {
  const name = `migrate_${randomInt(1e9)}`;
  await admin((client) => client.query(`CREATE DATABASE ${name}`));
  databases.push(name);
  return `${inject('infra').postgresBaseUrl}/${name}`;
}

async function query<R extends pg.QueryResultRow>(url: string, text: string): Promise<R[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R>(text)).rows;
  } finally {
    await client.end();
  }
}

const FIRST = 'CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL);\n';
const SECOND = 'INSERT INTO items VALUES (1, $$a; b$$), (2, \'c\');\n';
const CONCURRENT_INDEX =
  '-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS items_name ON items (name);\n' +
  'CREATE INDEX CONCURRENTLY IF NOT EXISTS items_name_id ON items (name, id);\n';

beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'matcha-migrations-'));
  await writeFile(path.join(dir, '001-items.sql'), FIRST);
  await writeFile(path.join(dir, '002-rows.sql'), SECOND);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

afterAll(async () => {
  await admin(async (client) => {
    for (const name of databases) await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  });
});

describe('migrate', () => {
  it('records the sha256 of each file it applies', async () => {
    const url = await emptyDatabase();
    expect(await migrate(url, dir)).toEqual(['001-items.sql', '002-rows.sql']);
    expect(await query(url, 'SELECT name, checksum FROM schema_migrations ORDER BY name')).toEqual([
      { name: '001-items.sql', checksum: sha256(FIRST) },
      { name: '002-rows.sql', checksum: sha256(SECOND) },
    ]);
    expect(await migrate(url, dir)).toEqual([]);
  });

  it('refuses to run when an applied file was edited, naming it and both checksums, and applies nothing', async () => {
    const url = await emptyDatabase();
    await migrate(url, dir);
    const edited = SECOND.replace("'c'", "'d'");
    await writeFile(path.join(dir, '002-rows.sql'), edited);
    await writeFile(path.join(dir, '003-more.sql'), 'CREATE TABLE more (id int);\n');
    const run = migrate(url, dir);
    await expect(run).rejects.toBeInstanceOf(MigrationChecksumError);
    await expect(run).rejects.toThrow(`migration 002-rows.sql was edited after it was applied: sha256 recorded ${sha256(SECOND)}, file now ${sha256(edited)}`);
    expect(await query(url, "SELECT to_regclass('more') AS more")).toEqual([{ more: null }]);
  });

  it('fills in the checksum of rows recorded before checksums were, then holds the file to it', async () => {
    const url = await emptyDatabase();
    // What the runner before checksums left: the table without the column, the files applied.
    await query(url, `CREATE TABLE schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
      ${FIRST}${SECOND}
      INSERT INTO schema_migrations (name) VALUES ('001-items.sql'), ('002-rows.sql')`);
    expect(await migrate(url, dir)).toEqual([]);
    expect(await query(url, 'SELECT name, checksum FROM schema_migrations ORDER BY name')).toEqual([
      { name: '001-items.sql', checksum: sha256(FIRST) },
      { name: '002-rows.sql', checksum: sha256(SECOND) },
    ]);
    await writeFile(path.join(dir, '001-items.sql'), `${FIRST}-- edited\n`);
    await expect(migrate(url, dir)).rejects.toThrow(/migration 001-items\.sql was edited/);
  });

  it('runs a -- migrate:no-transaction file statement by statement: CREATE INDEX CONCURRENTLY', async () => {
    const url = await emptyDatabase();
    await writeFile(path.join(dir, '003-index.sql'), CONCURRENT_INDEX);
    expect(await migrate(url, dir)).toEqual(['001-items.sql', '002-rows.sql', '003-index.sql']);
    const indexes = await query<{ name: string; valid: boolean }>(
      url,
      `SELECT c.relname AS name, i.indisvalid AS valid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
       WHERE i.indrelid = 'items'::regclass AND NOT i.indisprimary ORDER BY 1`,
    );
    expect(indexes).toEqual([
      { name: 'items_name', valid: true },
      { name: 'items_name_id', valid: true },
    ]);
    expect(await query(url, "SELECT checksum FROM schema_migrations WHERE name = '003-index.sql'")).toEqual([
      { checksum: sha256(CONCURRENT_INDEX) },
    ]);
  });

  it('lets concurrent runners take turns: every file applied once, a concurrent index build included', async () => {
    const url = await emptyDatabase();
    await writeFile(path.join(dir, '003-index.sql'), CONCURRENT_INDEX);
    // A slow first file keeps the lock held while the others queue behind it.
    await writeFile(path.join(dir, '000-slow.sql'), 'SELECT pg_sleep(1);\n');
    const runs = await Promise.all([migrate(url, dir), migrate(url, dir), migrate(url, dir)]);
    expect(runs.flat().sort()).toEqual(['000-slow.sql', '001-items.sql', '002-rows.sql', '003-index.sql']);
    expect(runs.filter((applied) => applied.length > 0)).toHaveLength(1);
  });
});
