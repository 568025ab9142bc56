import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { FEED_START, type FeedPosition } from './recorded-event.js';

const checkpointRow = z.object({ transaction_id: z.string(), global_position: z.bigint() });

/** The last feed position `consumer` has fully handled; the feed start when it has none yet. */
export async function loadCheckpoint(connection: CommonQueryMethods, consumer: string): Promise<FeedPosition> {
  const row = await connection.maybeOne(sql.type(checkpointRow)`
    SELECT transaction_id::text AS transaction_id, global_position
    FROM feed_checkpoints WHERE consumer = ${consumer}`);
  return row ? { transactionId: BigInt(row.transaction_id), globalPosition: row.global_position } : FEED_START;
}

/** Another instance moved the checkpoint: the caller is no longer the only writer and must stop. */
export class CheckpointFencedError extends Error {
  override readonly name = 'CheckpointFencedError';
}

/**
 * Moves `consumer`'s checkpoint from `expected` to `next` (compare-and-set).
 *
 * With `waitForFlush: false`, the statement's own (implicit) transaction commits without waiting for its WAL
 * flush: a crash may then lose the last checkpoints, which only suits a consumer that recovers a lost one
 * (the relay: it moves a checkpoint that is behind the stream, and JetStream drops repeated event ids).
 * @throws CheckpointFencedError when the stored checkpoint is not `expected`.
 */
export async function storeCheckpoint(
  connection: CommonQueryMethods,
  consumer: string,
  expected: FeedPosition,
  next: FeedPosition,
  options: { readonly waitForFlush?: boolean } = {},
): Promise<void> {
  // set_config(..., true) lasts until the end of the transaction, whose commit then reads it.
  const commitMode =
    (options.waitForFlush ?? true)
      ? sql.fragment`current_setting('synchronous_commit')`
      : sql.fragment`set_config('synchronous_commit', 'off', true)`;
  const updated = await connection.query(sql.unsafe`
    INSERT INTO feed_checkpoints AS c (consumer, transaction_id, global_position)
    SELECT ${consumer}, ${next.transactionId.toString()}::xid8, ${next.globalPosition.toString()}::bigint
    FROM (SELECT ${commitMode}) AS commit_mode
    ON CONFLICT (consumer) DO UPDATE
      SET transaction_id = EXCLUDED.transaction_id, global_position = EXCLUDED.global_position, updated_at = now()
      WHERE c.transaction_id = ${expected.transactionId.toString()}::xid8
        AND c.global_position = ${expected.globalPosition.toString()}::bigint`);
  if (updated.rowCount !== 1) {
    throw new CheckpointFencedError(`checkpoint of ${consumer} was moved by another instance`);
  }
}

const progressRow = z.object({ head: z.bigint().nullable(), checkpoint: z.bigint().nullable() });

/** How far the feed goes and how far `consumer` got, as the `global_position` of each (null: none yet). */
export type FeedProgress = { readonly head: bigint | null; readonly checkpoint: bigint | null };

/**
 * The global position of the feed's last committed event (its head, in feed order) and of `consumer`'s
 * checkpoint, in one statement (a backward step of the feed index and a primary-key lookup). The two are
 * equal once the consumer has handled everything; a head that moves while the checkpoint does not is a
 * stalled consumer.
 */
export async function readFeedProgress(connection: CommonQueryMethods, consumer: string): Promise<FeedProgress> {
  return connection.one(sql.type(progressRow)`
    SELECT
      (SELECT global_position FROM events ORDER BY transaction_id DESC, global_position DESC LIMIT 1) AS head,
      (SELECT global_position FROM feed_checkpoints WHERE consumer = ${consumer}) AS checkpoint`);
}
