import { sql, type CommonQueryMethods } from 'slonik';
import { eventRow, toRecordedEvent, type RecordedEvent } from './recorded-event.js';

export const selectEventColumns = sql.fragment`
  global_position, transaction_id::text AS transaction_id, stream_id, version, event_id, type, data, metadata,
  created_at`;

/** Events of one stream with `version > afterVersion`, in version order (committed ones only). */
export async function readStream(
  connection: CommonQueryMethods,
  streamId: string,
  options: { readonly afterVersion?: number; readonly toVersion?: number } = {},
): Promise<RecordedEvent[]> {
  const rows = await connection.any(sql.type(eventRow)`
    SELECT ${selectEventColumns}
    FROM events
    WHERE stream_id = ${streamId}
      AND version > ${options.afterVersion ?? 0}
      AND version <= ${options.toVersion ?? 2_147_483_647}
    ORDER BY version`);
  return rows.map(toRecordedEvent);
}
