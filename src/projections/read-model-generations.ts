import { sql, type CommonQueryMethods, type DatabaseTransactionConnection } from 'slonik';
import { z } from 'zod';
import { LIVE_TABLES, type ReadTables } from './conversation/apply-conversation-events.js';

/**
 * Generations of the read tables (migration 003). Clients read the views `discussion` and `messages`, which
 * point at the active generation's tables; the replay CLI builds generation N+1 beside them and switches the
 * views in one transaction. The row in `read_model_generations` is the switch's lock: every projector
 * transaction reads it FOR SHARE before writing, the switch holds it FOR UPDATE.
 */
export const CONVERSATIONS_PROJECTION = 'conversations';

export type Generations = { readonly active: number; readonly building: number | null };

const generationsRow = z.object({ active: z.number().int(), building: z.number().int().nullable() });

export function generationTables(generation: number): ReadTables {
  return { discussion: `discussion_g${generation}`, messages: `messages_g${generation}` };
}

export async function readGenerations(connection: CommonQueryMethods, projection: string): Promise<Generations> {
  return connection.one(sql.type(generationsRow)`
    SELECT active, building FROM read_model_generations WHERE projection = ${projection}`);
}

/**
 * Takes the generation row lock for the rest of the transaction: `share` for a projector write (many at
 * once), `update` for the switch (waits for those in flight, holds off new ones).
 */
export async function lockGenerations(
  transaction: DatabaseTransactionConnection,
  projection: string,
  mode: 'share' | 'update',
): Promise<Generations> {
  const lock = mode === 'share' ? sql.fragment`FOR SHARE` : sql.fragment`FOR UPDATE`;
  return transaction.one(sql.type(generationsRow)`
    SELECT active, building FROM read_model_generations WHERE projection = ${projection} ${lock}`);
}

/** Empty tables shaped like `source`: same columns, defaults, checks and indexes. */
export async function createTablesLike(
  connection: CommonQueryMethods,
  source: ReadTables,
  target: ReadTables,
): Promise<void> {
  for (const key of ['discussion', 'messages'] as const) {
    await connection.query(sql.unsafe`
      CREATE TABLE ${sql.identifier([target[key]])} (LIKE ${sql.identifier([source[key]])} INCLUDING ALL)`);
  }
}

export async function dropTables(connection: CommonQueryMethods, tables: ReadTables): Promise<void> {
  for (const key of ['discussion', 'messages'] as const) {
    await connection.query(sql.unsafe`DROP TABLE IF EXISTS ${sql.identifier([tables[key]])}`);
  }
}

export async function markBuilding(connection: CommonQueryMethods, projection: string, generation: number | null) {
  await connection.query(sql.unsafe`
    UPDATE read_model_generations
    SET building = ${generation}, building_started_at = CASE WHEN ${generation}::int IS NULL THEN NULL ELSE now() END
    WHERE projection = ${projection}`);
}

/**
 * Points the live views at `generation` and makes it active. Run it inside the transaction that holds the
 * generation row FOR UPDATE. Readers wait only for the instant between the view swap and the commit, and see
 * either all of the old generation or all of the new one.
 */
export async function switchGeneration(
  transaction: DatabaseTransactionConnection,
  projection: string,
  generation: number,
): Promise<void> {
  const tables = generationTables(generation);
  for (const key of ['discussion', 'messages'] as const) {
    await transaction.query(sql.unsafe`
      CREATE OR REPLACE VIEW ${sql.identifier([LIVE_TABLES[key]])} AS SELECT * FROM ${sql.identifier([tables[key]])}`);
  }
  await transaction.query(sql.unsafe`
    UPDATE read_model_generations
    SET active = ${generation}, building = NULL, building_started_at = NULL, switched_at = now()
    WHERE projection = ${projection}`);
}
