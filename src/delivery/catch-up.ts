import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { eventRow, toRecordedEvent, type FeedPosition, type RecordedEvent } from '../event-store/recorded-event.js';
import { blockAfter } from './block-in-force.js';
import { recipientsOfConversationData, recordedEventFrame, UnframeableEventError, type EventFrame } from './event-frames.js';
import { FRAME_CONVERSATION_WAIT_MS, readFrameConversations, type FrameConversations } from './frame-conversations.js';

export type CatchUp = { readonly frames: EventFrame[] };

/** Per conversation, the versions to replay: `(afterVersion, uptoVersion]`. */
const rangeRow = z.object({
  stream_id: z.string(),
  after_version: z.number().int(),
  upto_version: z.number().int(),
});

/** Per conversation in range, the block in force right after its `after_version` (null when none). */
const blockRow = z.object({ stream_id: z.string(), blocked_by: z.number().int().nullable() });

/**
 * The frames a user missed: every event of the user's conversations whose feed position is after `after`,
 * as the user's frames, in feed order `(transaction_id, global_position)`, which within a conversation is
 * `seq` order. The same frames, cursors included, as the fan-out publishes live to this user.
 *
 * Guarantees:
 * - commit-safe, like the global feed (read-feed.ts): only events below the `pg_snapshot_xmin` horizon of
 *   one snapshot are returned, so an event not returned now will, once it is, sort after the last frame
 *   returned now. A client resuming from the last cursor it received never skips an event. Read from the
 *   primary: a replica's horizon does not bound the primary's;
 * - bounded: more than `limit` events gives 'resync_required' (the client refetches over REST), decided
 *   before any event is read;
 * - the block holds: each event is framed with the block in force at its version, so after a block the
 *   blocked user gets its `conversation_removed` and nothing more of the conversation until the unblock
 *   (`conversation_restored`, then its frames again);
 * - events this version has no frame for are passed over.
 *
 * How: within one conversation, feed order is version order (an append gets its transaction id after every
 * append it builds on committed: docs/event-store.md), so "after the cursor" is a suffix of its versions
 * and "below the horizon" a prefix. One statement finds both ends per conversation by binary search on the
 * primary key `(stream_id, version)`: one probe when nothing is new, about log2(versions) otherwise, however
 * long the conversation and however busy the rest of the log. A second statement reads the versions in
 * between; they are committed and never rewritten, so reading them after the first statement changes
 * nothing. A third, only when something is to be read, gives the block in force before each range (the last
 * block change at or before it, on migration 005's partial index); the range's own events carry it on.
 * Block and unblock frames carry the user's Conversation: one bounded wait for the read tables, then one read
 * per conversation with such a frame (frame-conversations.ts).
 */
export async function readCatchUp(
  connection: CommonQueryMethods,
  userId: number,
  after: FeedPosition,
  options: { readonly limit: number },
): Promise<CatchUp | 'resync_required'> {
  const { limit } = options;
  if (!Number.isInteger(limit) || limit < 0) throw new Error(`limit must be a non-negative integer, got ${limit}`);
  const ranges = await replayRanges(connection, userId, after);
  const total = ranges.reduce((sum, range) => sum + (range.upto_version - range.after_version), 0);
  if (total > limit) return 'resync_required';
  if (total === 0) return { frames: [] };

  // Columns are qualified: a bare `transaction_id` in ORDER BY would sort by the text output alias.
  const rows = await connection.any(sql.type(eventRow)`
    SELECT e.global_position, e.transaction_id::text AS transaction_id, e.stream_id, e.version, e.event_id,
           e.type, e.data, e.metadata, e.created_at
    FROM unnest(
      ${sql.array(ranges.map((range) => range.stream_id), 'text')},
      ${sql.array(ranges.map((range) => range.after_version), 'int4')},
      ${sql.array(ranges.map((range) => range.upto_version), 'int4')}
    ) AS r(stream_id, after_version, upto_version)
    JOIN events AS e ON e.stream_id = r.stream_id AND e.version > r.after_version AND e.version <= r.upto_version
    ORDER BY e.transaction_id, e.global_position`);

  const blocks = await blocksBefore(connection, ranges);
  const events = rows.map(toRecordedEvent);
  const conversations = await frameConversations(connection, userId, events);
  const frames: EventFrame[] = [];
  for (const event of events) {
    const blockedBy = blockAfter(blocks.get(event.streamId) ?? null, event);
    blocks.set(event.streamId, blockedBy);
    try {
      const frame = recordedEventFrame(event, {
        userId,
        blockedBy,
        conversation: conversations.get(event.streamId, userId),
      });
      if (frame) frames.push(frame);
    } catch (error) {
      if (!(error instanceof UnframeableEventError)) throw error;
    }
  }
  return { frames };
}

/** The block in force right after each range's `after_version`: one statement for every range. */
async function blocksBefore(
  connection: CommonQueryMethods,
  ranges: readonly z.infer<typeof rangeRow>[],
): Promise<Map<string, number | null>> {
  const rows = await connection.any(sql.type(blockRow)`
    SELECT r.stream_id, (last_change.data ->> 'blocked_by')::int AS blocked_by
    FROM unnest(
      ${sql.array(ranges.map((range) => range.stream_id), 'text')},
      ${sql.array(ranges.map((range) => range.after_version), 'int4')}
    ) AS r(stream_id, after_version)
    CROSS JOIN LATERAL (
      SELECT e.type, e.data FROM events AS e
      WHERE e.stream_id = r.stream_id AND e.version <= r.after_version
        AND e.type IN ('ConversationBlocked', 'ConversationUnblocked')
      ORDER BY e.version DESC
      LIMIT 1
    ) AS last_change
    WHERE last_change.type = 'ConversationBlocked'`);
  return new Map(rows.map((row) => [row.stream_id, row.blocked_by]));
}

/**
 * The user's Conversation for each conversation with a block or unblock frame for them, read once per
 * conversation after one bounded wait for all of them (frame-conversations.ts).
 */
function frameConversations(connection: CommonQueryMethods, userId: number, events: readonly RecordedEvent[]): Promise<FrameConversations> {
  const requests = events
    .filter((event) => recipientsOfConversationData(event).includes(userId))
    .map((event) => ({ conversationId: event.streamId, atVersion: event.version, userIds: [userId] }));
  return readFrameConversations(connection, requests, FRAME_CONVERSATION_WAIT_MS);
}

/**
 * Per conversation of the user with something to replay, the versions after the cursor and below the
 * horizon, from one snapshot. Both ends come from binary searches over versions on predicates that are
 * monotone in the version: `b` = last version at or before the cursor, `h` = last version below the
 * horizon (0 when none); the range is `(b, h]`. Each search keeps `pred(lo)` true (or lo = 0) and
 * `pred(hi)` false (or hi = newest + 1) and stops at hi = lo + 1; the newest event settles both at once in
 * the common case (nothing new, nothing in flight).
 */
async function replayRanges(
  connection: CommonQueryMethods,
  userId: number,
  after: FeedPosition,
): Promise<readonly z.infer<typeof rangeRow>[]> {
  const cursor = sql.fragment`(${after.transactionId.toString()}::xid8, ${after.globalPosition.toString()}::bigint)`;
  return connection.any(sql.type(rangeRow)`
    WITH RECURSIVE
      horizon AS MATERIALIZED (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin),
      mine AS (
        SELECT p.conversation_id FROM conversation_pairs AS p WHERE p.user_low = ${userId}
        UNION ALL
        SELECT p.conversation_id FROM conversation_pairs AS p WHERE p.user_high = ${userId}
      ),
      newest AS (
        SELECT t.stream_id, t.version, (t.transaction_id, t.global_position) <= ${cursor} AS before_cursor,
               t.transaction_id < h.xmin AS below_horizon
        FROM mine
        CROSS JOIN horizon AS h
        CROSS JOIN LATERAL (
          SELECT e.stream_id, e.version, e.transaction_id, e.global_position FROM events AS e
          WHERE e.stream_id = mine.conversation_id
          ORDER BY e.version DESC
          LIMIT 1
        ) AS t
      ),
      search AS (
        SELECT n.stream_id,
               CASE WHEN n.before_cursor THEN n.version ELSE 0 END AS b_lo,
               CASE WHEN n.before_cursor THEN n.version + 1 ELSE n.version END AS b_hi,
               CASE WHEN n.below_horizon THEN n.version ELSE 0 END AS h_lo,
               CASE WHEN n.below_horizon THEN n.version + 1 ELSE n.version END AS h_hi
        FROM newest AS n
        UNION ALL
        SELECT s.stream_id,
               CASE WHEN s.b_hi - s.b_lo <= 1 THEN s.b_lo WHEN b.before_cursor THEN b.version ELSE s.b_lo END,
               CASE WHEN s.b_hi - s.b_lo <= 1 THEN s.b_hi WHEN b.before_cursor THEN s.b_hi ELSE b.version END,
               CASE WHEN s.h_hi - s.h_lo <= 1 THEN s.h_lo WHEN h.below_horizon THEN h.version ELSE s.h_lo END,
               CASE WHEN s.h_hi - s.h_lo <= 1 THEN s.h_hi WHEN h.below_horizon THEN s.h_hi ELSE h.version END
        FROM search AS s
        CROSS JOIN horizon AS hz
        -- A search still open probes lo < mid < hi, a version that exists (versions are gapless from 1); a
        -- settled one probes nothing.
        LEFT JOIN LATERAL (
          SELECT e.version, (e.transaction_id, e.global_position) <= ${cursor} AS before_cursor
          FROM events AS e
          WHERE s.b_hi - s.b_lo > 1 AND e.stream_id = s.stream_id AND e.version = (s.b_lo + s.b_hi) / 2
        ) AS b ON true
        LEFT JOIN LATERAL (
          SELECT e.version, e.transaction_id < hz.xmin AS below_horizon
          FROM events AS e
          WHERE s.h_hi - s.h_lo > 1 AND e.stream_id = s.stream_id AND e.version = (s.h_lo + s.h_hi) / 2
        ) AS h ON true
        WHERE s.b_hi - s.b_lo > 1 OR s.h_hi - s.h_lo > 1
      )
    SELECT s.stream_id, s.b_lo AS after_version, s.h_lo AS upto_version
    FROM search AS s
    WHERE s.b_hi - s.b_lo <= 1 AND s.h_hi - s.h_lo <= 1 AND s.h_lo > s.b_lo`);
}
