import { sql, type CommonQueryMethods } from 'slonik';
import { eventRow, toRecordedEvent, type FeedPosition, type RecordedEvent } from './recorded-event.js';
import { selectEventColumns } from './read-stream.js';

/**
 * Reads the global feed: committed events after `after`, in `(transaction_id, global_position)` order.
 *
 * Guarantee: a reader that resumes from the last position it received never skips an event. Rows of a
 * transaction that is still running, or that started before any running transaction, are held back (the
 * `pg_snapshot_xmin` horizon) and so cannot later appear behind the checkpoint. The horizon and the rows come
 * from one statement, hence one snapshot. A long open write transaction anywhere in the cluster pauses the
 * feed; it never loses events. Rolled-back appends leave holes in `global_position` that are simply absent.
 */
export async function readFeed(
  connection: CommonQueryMethods,
  options: { readonly after: FeedPosition; readonly limit: number },
): Promise<RecordedEvent[]> {
  const { after, limit } = options;
  const rows = await connection.any(sql.type(eventRow)`
    SELECT ${selectEventColumns}
    FROM events AS e
    WHERE (e.transaction_id, e.global_position)
            > (${after.transactionId.toString()}::xid8, ${after.globalPosition.toString()}::bigint)
      AND e.transaction_id < pg_snapshot_xmin(pg_current_snapshot())
    -- Qualified: the bare name would sort by the text output column of the same name.
    ORDER BY e.transaction_id, e.global_position
    LIMIT ${limit}`);
  return rows.map(toRecordedEvent);
}
