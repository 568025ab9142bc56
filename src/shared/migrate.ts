import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { sleep } from './sleep.js';
import { splitSqlStatements } from './sql-statements.js';

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../migrations/', import.meta.url));

/** Arbitrary constant: the advisory lock key that serialises migration runs across processes. */
const MIGRATION_LOCK_KEY = 4_201_337;
const LOCK_RETRY_MS = 200;

/** A file whose first line is this runs statement by statement outside a transaction. */
export const NO_TRANSACTION_MARKER = '-- migrate:no-transaction';

export class MigrationChecksumError extends Error {
  override readonly name = 'MigrationChecksumError';
}

type Migration = { readonly file: string; readonly text: string; readonly checksum: string };

/**
 * Applies the `migrations/*.sql` files not yet recorded in `schema_migrations`, in file-name order, and
 * records each with the sha256 of its text.
 *
 * - Each file runs in its own transaction, unless its first line is `-- migrate:no-transaction` (what
 *   `CREATE INDEX CONCURRENTLY` needs): its statements then run one by one, and it is recorded after the
 *   last; one that fails half way runs again from its first statement, so such a file must be idempotent
 *   (`IF NOT EXISTS`).
 * - An applied file whose text changed stops the run before anything is applied, naming the file and both
 *   checksums. A row recorded before checksums were (NULL) takes the file's checksum as it is now.
 * - Safe when several processes start at once: they take turns on an advisory lock and the later ones find
 *   nothing left to do. The lock is polled rather than waited on, so that a waiting runner holds no
 *   snapshot a concurrent index build would wait for.
 * @returns the names of the files this call applied.
 * @throws MigrationChecksumError when an applied file was edited.
 */
export async function migrate(databaseUrl: string, migrationsDir = MIGRATIONS_DIR): Promise<string[]> {
  const migrations = await readMigrations(migrationsDir);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    while (!(await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [MIGRATION_LOCK_KEY])).rows[0]?.locked) {
      await sleep(LOCK_RETRY_MS);
    }
    await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      name text PRIMARY KEY,
      applied_at timestamptz NOT NULL DEFAULT now(),
      checksum text
    )`);
    // Databases migrated before checksums were recorded have the table without the column.
    await client.query('ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum text');
    const recorded = new Map(
      (await client.query<{ name: string; checksum: string | null }>('SELECT name, checksum FROM schema_migrations')).rows.map(
        (row) => [row.name, row.checksum],
      ),
    );
    for (const migration of migrations) {
      const checksum = recorded.get(migration.file);
      if (checksum === undefined || checksum === null || checksum === migration.checksum) continue;
      throw new MigrationChecksumError(
        `migration ${migration.file} was edited after it was applied: sha256 recorded ${checksum}, file now ` +
          `${migration.checksum}. Restore the file and put the change in a new migration.`,
      );
    }
    for (const migration of migrations) {
      if (recorded.get(migration.file) === null) {
        await client.query('UPDATE schema_migrations SET checksum = $2 WHERE name = $1', [migration.file, migration.checksum]);
      }
    }
    const applied: string[] = [];
    for (const migration of migrations) {
      if (recorded.has(migration.file)) continue;
      if (migration.text.startsWith(NO_TRANSACTION_MARKER)) await applyOutsideTransaction(client, migration);
      else await applyInTransaction(client, migration);
      applied.push(migration.file);
    }
    return applied;
  } finally {
    await client.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY]).catch(() => undefined);
    await client.end();
  }
}

async function readMigrations(migrationsDir: string): Promise<Migration[]> {
  const files = (await readdir(migrationsDir)).filter((file) => file.endsWith('.sql')).sort();
  return Promise.all(
    files.map(async (file) => {
      const bytes = await readFile(path.join(migrationsDir, file));
      return { file, text: bytes.toString('utf8'), checksum: createHash('sha256').update(bytes).digest('hex') };
    }),
  );
}

const RECORD = 'INSERT INTO schema_migrations (name, checksum) VALUES ($1, $2)';

async function applyInTransaction(client: pg.Client, migration: Migration): Promise<void> {
  await client.query('BEGIN');
  try {
    await client.query(migration.text);
    await client.query(RECORD, [migration.file, migration.checksum]);
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK');
    throw new Error(`migration ${migration.file} failed`, { cause: error });
  }
}

async function applyOutsideTransaction(client: pg.Client, migration: Migration): Promise<void> {
  const statements = splitSqlStatements(migration.text);
  for (const [index, statement] of statements.entries()) {
    try {
      await client.query(statement);
    } catch (error) {
      throw new Error(`migration ${migration.file} (no transaction) failed at statement ${index + 1} of ${statements.length}`, {
        cause: error,
      });
    }
  }
  await client.query(RECORD, [migration.file, migration.checksum]);
}
