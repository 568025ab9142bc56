import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { ReadTables } from '../projections/conversation/apply-conversation-events.js';

/** One row that is not the same in the live and the rebuilt tables; a side is null where the row is missing. */
export type RowDifference = {
  readonly table: keyof ReadTables;
  readonly id: string;
  readonly live: Record<string, unknown> | null;
  readonly rebuilt: Record<string, unknown> | null;
};

export type TablesComparison = {
  /** Rows that differ, per table. */
  readonly counts: Readonly<Record<keyof ReadTables, number>>;
  /** The first differing rows of each table, by id. */
  readonly samples: readonly RowDifference[];
};

const differenceRow = z.object({
  id: z.string(),
  live: z.record(z.string(), z.unknown()).nullable(),
  rebuilt: z.record(z.string(), z.unknown()).nullable(),
  total: z.coerce.number().int(),
});

/**
 * Compares two generations of the read tables row by row, every column, matched on `id`.
 * Cost: one full outer hash join per table.
 */
export async function compareTables(
  connection: CommonQueryMethods,
  live: ReadTables,
  rebuilt: ReadTables,
  options: { readonly sampleSize: number },
): Promise<TablesComparison> {
  const counts = { discussion: 0, messages: 0 };
  const samples: RowDifference[] = [];
  for (const table of ['discussion', 'messages'] as const) {
    const rows = await connection.any(sql.type(differenceRow)`
      SELECT coalesce(l.id, r.id) AS id, to_jsonb(l) AS live, to_jsonb(r) AS rebuilt, count(*) OVER () AS total
      FROM ${sql.identifier([live[table]])} AS l
      FULL JOIN ${sql.identifier([rebuilt[table]])} AS r ON r.id = l.id
      WHERE to_jsonb(l) IS DISTINCT FROM to_jsonb(r)
      ORDER BY 1
      LIMIT ${options.sampleSize}`);
    counts[table] = rows[0]?.total ?? 0;
    samples.push(...rows.map(({ id, live: liveRow, rebuilt: rebuiltRow }) => ({ table, id, live: liveRow, rebuilt: rebuiltRow })));
  }
  return { counts, samples };
}

/** Human-readable lines: per differing row, the columns whose values differ. */
export function describeDifferences(comparison: TablesComparison): string[] {
  const lines = [
    `discussion: ${comparison.counts.discussion} rows differ; messages: ${comparison.counts.messages} rows differ`,
  ];
  for (const { table, id, live, rebuilt } of comparison.samples) {
    if (!live) lines.push(`  ${table} ${id}: only in the rebuilt tables`);
    else if (!rebuilt) lines.push(`  ${table} ${id}: only in the live tables`);
    else {
      const columns = Object.keys(live).filter((column) => JSON.stringify(live[column]) !== JSON.stringify(rebuilt[column]));
      const detail = columns.map((c) => `${c}: live ${JSON.stringify(live[c])}, rebuilt ${JSON.stringify(rebuilt[c])}`);
      lines.push(`  ${table} ${id}: ${detail.join('; ')}`);
    }
  }
  return lines;
}
