import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { FeedPosition } from '../event-store/recorded-event.js';

/** The largest `bigint`: with it, the position sorts after every event of its transaction id. */
const MAX_GLOBAL_POSITION = 2n ** 63n - 1n;

const horizonRow = z.object({ xmin: z.string() });

/**
 * The last feed position below the commit-safe horizon at this moment: `(xmin - 1, max)`, where `xmin` is
 * `pg_snapshot_xmin(pg_current_snapshot())` (docs/event-store.md, "Reading the feed").
 *
 * Guarantee: every event that commits after this call started sorts after the returned position. A
 * transaction still running, or starting later, has an id at or above `xmin`; the newest row would not do,
 * since a running transaction may hold a lower `global_position` and commit later. A catch-up from this
 * position (readCatchUp) therefore skips nothing committed from now on; it may also return events of
 * transactions at or above `xmin` that committed just before (more, never less).
 *
 * Read from the primary: a replica's horizon does not bound the primary's transactions.
 */
export async function readFeedHorizon(connection: CommonQueryMethods): Promise<FeedPosition> {
  // xid8 has no type parser: read as text.
  const row = await connection.one(sql.type(horizonRow)`SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin`);
  return { transactionId: BigInt(row.xmin) - 1n, globalPosition: MAX_GLOBAL_POSITION };
}
