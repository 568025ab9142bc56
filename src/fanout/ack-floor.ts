import type { JetStreamManager } from 'nats';
import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import type { FeedPosition } from '../event-store/recorded-event.js';
import { feedPositionOf } from '../relay/event-message.js';

/**
 * What a fan-out that has no memory of a conversation (it just started, or forgot it) can still know: the
 * durable consumer's ack floor. Every message at or below it was acked, and the fan-out acks an event only
 * once its frames are published, so every event at or before the floor's feed position has been published
 * by some instance. The stream's order is the feed's (one relay publishes, in feed order), which turns the
 * floor's stream sequence into a feed position.
 */
export type AckFloor = {
  /** Feed position of the message at the floor; null when there is none (nothing acked yet) or it aged out. */
  readonly position: FeedPosition | null;
  /** At most this many messages are delivered and not yet acked at a time (Infinity when unlimited). */
  readonly maxAckPending: number;
};

export async function readAckFloor(jsm: JetStreamManager, stream: string, durable: string): Promise<AckFloor> {
  const info = await jsm.consumers.info(stream, durable);
  const limit = info.config.max_ack_pending;
  const maxAckPending = limit !== undefined && limit > 0 ? limit : Number.POSITIVE_INFINITY;
  const seq = info.ack_floor.stream_seq;
  if (seq === 0) return { position: null, maxAckPending };
  const message = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
  return { position: feedPositionOf(message?.header), maxAckPending };
}

const versionRow = z.object({ version: z.number().int() });

/**
 * For a conversation the fan-out has no guard for, the highest version below `beforeVersion` whose frames
 * are certainly published: its last event at or before the ack floor. The versions after it may have been
 * delivered to an instance that died before acking; JetStream redelivers those only after the ack wait,
 * possibly after newer ones, so the caller republishes them from the log first, in order, and skips them
 * when they come back. Gateways drop the repeats.
 *
 * Without a floor position only the pending bound is left, and the last `maxAckPending` versions are
 * republished. That is exact when nothing was ever acked (every message delivered so far is still pending,
 * so there are at most that many), and a best effort when the floor's message has aged out of the stream
 * (a fan-out more than the retention behind).
 */
export async function lastSurelyPublishedVersion(
  connection: CommonQueryMethods,
  conversationId: string,
  beforeVersion: number,
  floor: AckFloor,
): Promise<number> {
  if (!floor.position) return Math.max(0, beforeVersion - 1 - floor.maxAckPending);
  // A backward walk on the primary key from `beforeVersion`, stopping at the first event at or before the
  // floor: as long as the conversation's events after the floor, which are what the caller republishes.
  const version = await connection.maybeOneFirst(sql.type(versionRow)`
    SELECT e.version FROM events AS e
    WHERE e.stream_id = ${conversationId} AND e.version < ${beforeVersion}
      AND (e.transaction_id, e.global_position)
            <= (${floor.position.transactionId.toString()}::xid8, ${floor.position.globalPosition.toString()}::bigint)
    ORDER BY e.version DESC
    LIMIT 1`);
  return version ?? 0;
}
