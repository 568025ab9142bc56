import { sql, UniqueIntegrityConstraintViolationError, type DatabasePool } from 'slonik';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabasePool } from '../../../src/shared/database.js';
import { createStatementNames } from '../../../src/shared/pg-driver.js';
import { createTestDatabase } from '../../support/infra.js';

let pool: DatabasePool;

beforeAll(async () => {
  // One connection, so every query below runs on the session whose prepared statements it inspects.
  pool = await createDatabasePool({ url: await createTestDatabase(), maximumPoolSize: 1 });
  await pool.query(sql.unsafe`CREATE TABLE driver_probe (id int8 PRIMARY KEY, at timestamptz NOT NULL, tags int8[] NOT NULL)`);
});

afterAll(async () => {
  await pool?.end();
});

const preparedStatements = () =>
  pool.anyFirst(sql.type(z.object({ statement: z.string() }))`
    SELECT statement FROM pg_prepared_statements
    WHERE statement LIKE '%driver_probe%' AND statement NOT LIKE '%pg_prepared_statements%'
    ORDER BY prepare_time`);

describe('the preparing pg driver', () => {
  it('prepares a statement on its second use and reuses it, with the same rows and type parsers', async () => {
    const insert = (id: bigint) =>
      pool.query(sql.unsafe`INSERT INTO driver_probe (id, at, tags) VALUES (${id}, '2026-11-24T10:00:00Z', ARRAY[${id}, 7]::int8[])`);
    await insert(1n);
    expect(await preparedStatements()).toEqual([]);
    await insert(2n);
    await insert(3n);
    expect(await preparedStatements()).toEqual([expect.stringContaining('INSERT INTO driver_probe')]);

    const row = z.object({ id: z.bigint(), at: z.number(), tags: z.array(z.bigint()) });
    const select = (id: bigint) => pool.one(sql.type(row)`SELECT id, at, tags FROM driver_probe WHERE id = ${id}`);
    const answers = [await select(1n), await select(2n), await select(3n)];
    // int8 as bigint, timestamptz as epoch milliseconds, int8[] as bigint[]: unnamed and named alike.
    expect(answers).toEqual([1n, 2n, 3n].map((id) => ({ id, at: Date.parse('2026-11-24T10:00:00Z'), tags: [id, 7n] })));
    expect(await preparedStatements()).toHaveLength(2);
  });

  it('maps Postgres errors to slonik error classes, for named statements too', async () => {
    const insertTwice = () => pool.query(sql.unsafe`INSERT INTO driver_probe (id, at, tags) VALUES (${1n}, now(), '{}')`);
    for (let attempt = 0; attempt < 3; attempt++) {
      await expect(insertTwice()).rejects.toBeInstanceOf(UniqueIntegrityConstraintViolationError);
    }
  });

  it('names no DDL and no more texts than its limit', () => {
    const names = createStatementNames(2);
    const twice = (text: string) => [names.nameFor(text), names.nameFor(text)];
    expect(twice('CREATE TABLE t (id int)')).toEqual([undefined, undefined]);
    expect(twice('SELECT 1')).toEqual([undefined, 'matcha_1']);
    expect(twice('  with x AS (SELECT 1) SELECT * FROM x')).toEqual([undefined, 'matcha_2']);
    expect(twice('SELECT 2')).toEqual([undefined, undefined]);
    expect(names.nameFor('SELECT 1')).toBe('matcha_1');
  });
});
