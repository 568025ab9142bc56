import { describe, expect, it } from 'vitest';
import { splitSqlStatements } from './sql-statements.js';

describe('splitSqlStatements', () => {
  it('splits at the semicolons that end statements, dropping comment-only and empty pieces', () => {
    const script = `-- migrate:no-transaction
CREATE INDEX CONCURRENTLY IF NOT EXISTS a_x ON a (x);

/* second; with a semicolon in a comment */
CREATE INDEX CONCURRENTLY IF NOT EXISTS b_y ON b (y);;
-- trailing; comment
`;
    expect(splitSqlStatements(script)).toEqual([
      '-- migrate:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS a_x ON a (x)',
      '/* second; with a semicolon in a comment */\nCREATE INDEX CONCURRENTLY IF NOT EXISTS b_y ON b (y)',
    ]);
  });

  it('keeps semicolons inside strings, quoted names and dollar-quoted bodies', () => {
    const script = [
      "INSERT INTO t VALUES ('a;b', 'it''s; fine', E'x\\';y')",
      'SELECT 1 AS "odd;name"',
      'CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT 1; $$',
      'DO $body$ BEGIN PERFORM 1; END $body$',
      'SELECT 2',
    ].join(';\n');
    expect(splitSqlStatements(script)).toHaveLength(5);
    expect(splitSqlStatements(script)[0]).toBe("INSERT INTO t VALUES ('a;b', 'it''s; fine', E'x\\';y')");
    expect(splitSqlStatements(script)[3]).toBe('DO $body$ BEGIN PERFORM 1; END $body$');
  });

  it('treats a positional parameter ($1) as text, not as a dollar quote', () => {
    expect(splitSqlStatements('SELECT $1; SELECT 2')).toEqual(['SELECT $1', 'SELECT 2']);
  });
});
