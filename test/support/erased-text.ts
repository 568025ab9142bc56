import { randomUUID } from 'node:crypto';
import type { NatsConnection } from 'nats';
import { sql, type DatabasePool } from 'slonik';
import { z } from 'zod';

/** A text no other test writes, to look for in every store after its message is deleted. */
export function uniqueText(label: string): string {
  return `${label} ${randomUUID()}`;
}

const tableRow = z.object({ schema: z.string(), name: z.string() });
const countRow = z.object({ count: z.coerce.number().int() });

/**
 * The tables of the database holding `text` anywhere in a row (every column, as the row's text form), as
 * `schema.table: rows`. Every table of every schema but the system catalogs, whoever owns it.
 */
export async function tablesHolding(pool: DatabasePool, text: string): Promise<string[]> {
  const tables = await pool.any(sql.type(tableRow)`
    SELECT schemaname AS schema, tablename AS name FROM pg_tables
    WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2`);
  const holding: string[] = [];
  for (const table of tables) {
    const count = await pool.oneFirst(sql.type(countRow)`
      SELECT count(*) AS count FROM ${sql.identifier([table.schema, table.name])} AS t
      WHERE strpos(t::text, ${text}) > 0`);
    if (count > 0) holding.push(`${table.schema}.${table.name}: ${count}`);
  }
  return holding;
}

/**
 * The messages of every stream of the server (or of `only` that one) that hold `text` in their body or
 * headers, as `stream#sequence`; each stream is read whole with an ordered consumer.
 */
export async function streamMessagesHolding(nc: NatsConnection, text: string, only?: string): Promise<string[]> {
  const jsm = await nc.jetstreamManager();
  const holding: string[] = [];
  const names: string[] = [];
  for await (const name of jsm.streams.names()) if (only === undefined || name === only) names.push(name);
  for (const name of names) {
    const stream = await jsm.streams.info(name);
    const total = stream.state.messages;
    if (total === 0) continue;
    const consumer = await nc.jetstream().consumers.get(name);
    const messages = await consumer.consume({ max_messages: 1000 });
    let read = 0;
    for await (const message of messages) {
      const headers = message.headers ? [...message.headers].map(([key, values]) => `${key}: ${values.join(',')}`).join('\n') : '';
      if (message.string().includes(text) || headers.includes(text)) holding.push(`${stream.config.name}#${message.seq}`);
      // The stream's last sequence ends the read: messages deleted meanwhile are simply not delivered.
      if (++read >= total || message.seq >= stream.state.last_seq) break;
    }
    await messages.close();
  }
  return holding;
}
