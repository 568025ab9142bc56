import type { JetStreamClient, JetStreamManager } from 'nats';
import type { DatabasePool } from 'slonik';
import { EVENTS_APPENDED_CHANNEL } from '../event-store/append-to-stream.js';
import { CheckpointFencedError, loadCheckpoint, storeCheckpoint } from '../event-store/feed-checkpoint.js';
import { traceFieldsOf } from '../event-store/event-metadata.js';
import { readFeed } from '../event-store/read-feed.js';
import { compareFeedPositions, formatFeedPosition, type FeedPosition } from '../event-store/recorded-event.js';
import type { RecordedEvent } from '../event-store/recorded-event.js';
import type { Logger } from '../shared/logger.js';
import type { RelayMetrics } from './relay-metrics.js';
import { eventSubject } from '../shared/nats.js';
import { sleep } from '../shared/sleep.js';
import { hopClock, hopKey, type HopTimes } from '../shared/hop-times.js';
import { feedPositionOf, toEventMessage } from './event-message.js';
import type { LeaderLease } from '../shared/leader-lease.js';
import { EVENTS_ERASED_CHANNEL } from '../event-store/event-erasures.js';
import { eraseFromStream } from './stream-erasure.js';

export type RelayDeps = {
  readonly pool: DatabasePool;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly lease: LeaderLease;
  readonly logger: Logger;
  readonly metrics: RelayMetrics;
  readonly streamName: string;
  readonly subjectPrefix: string;
  readonly batchSize: number;
  readonly pollIntervalMs: number;
  /** Benchmarks: when enabled, each event's feed read and publish ack (hop-times.ts). */
  readonly hopTimes?: HopTimes;
};

export type Relay = {
  /** Runs until `stop()`: waits for leadership, then publishes. Rejects on an unrecoverable error. */
  readonly done: Promise<void>;
  /** Finishes the batch in flight (publish and checkpoint), then stops. */
  stop(): Promise<void>;
};

/** The relay's row in `feed_checkpoints`, one per events stream. */
export const relayCheckpointName = (streamName: string): string => `relay:${streamName}`;

/** Pause after a failed batch (NATS or Postgres unreachable) before reading the feed again. */
const RETRY_DELAY_MS = 500;

/**
 * The relay: publishes the Postgres event log, in feed order, to the JetStream events stream.
 *
 * Guarantees: every committed event reaches the stream; per conversation, in version order. The checkpoint
 * advances only after JetStream acknowledged every event up to it. A relay that dies after the ack but
 * before the checkpoint is covered twice over: the next leader starts from the position of the last message
 * in the stream when that is ahead of the checkpoint, and JetStream drops a repeated `Nats-Msg-Id` within its
 * duplicate window. Only the holder of the lease publishes; a checkpoint moved by anyone else stops it.
 *
 * Erasure (a delete for everyone, docs/event-store.md): once the checkpoint is at or past an erasing event,
 * the copies of the event it erased are deleted from the stream (stream-erasure.ts), then the erasure is
 * marked done. Not before: until then the erased event may still be published from a feed read that
 * preceded the erasure. A leader that dies in between, or a failed attempt, leaves it to be done again.
 */
export function startRelay(deps: RelayDeps): Relay {
  const { logger } = deps;
  const stopping = new AbortController();
  const consumer = relayCheckpointName(deps.streamName);
  let wake = new AbortController();
  let pending = true;
  // At start, what a previous leader left undone.
  let erasuresDue = true;

  const run = async (): Promise<void> => {
    const stop = AbortSignal.any([stopping.signal, deps.lease.lost]);
    logger.info('waiting for leadership');
    if (!(await deps.lease.acquire(stop))) return;
    logger.info('leadership acquired: relaying');
    deps.metrics.leader(true);
    await deps.lease.listen(EVENTS_APPENDED_CHANNEL, () => {
      pending = true;
      wake.abort();
    });
    await deps.lease.listen(EVENTS_ERASED_CHANNEL, () => {
      erasuresDue = true;
    });

    let checkpoint = await catchUpWithStream(deps, consumer, await loadCheckpoint(deps.pool, consumer));
    while (!stop.aborted) {
      if (!pending) {
        await sleep(deps.pollIntervalMs, AbortSignal.any([stop, wake.signal]));
        wake = new AbortController();
      }
      pending = false;
      try {
        const events = await readFeed(deps.pool, { after: checkpoint, limit: deps.batchSize });
        if (events.length > 0) {
          const readAt = deps.hopTimes?.enabled ? hopClock() : 0;
          checkpoint = await publishBatch(deps, consumer, checkpoint, events, readAt);
          // A full batch means more may be waiting: read again at once.
          pending = events.length === deps.batchSize;
        }
        if (erasuresDue) {
          // Cleared first: an erasure notified while this runs sets it again.
          erasuresDue = false;
          if ((await eraseFromStream(deps, checkpoint)).waiting) erasuresDue = true;
        }
      } catch (error) {
        if (error instanceof CheckpointFencedError) throw error;
        logger.warn({ err: error }, 'relay batch failed; retrying from the checkpoint');
        pending = true;
        erasuresDue = true;
        await sleep(RETRY_DELAY_MS, stop);
      }
    }
    deps.metrics.leader(false);
    if (deps.lease.lost.aborted) throw new Error('relay lost its lease', { cause: deps.lease.lost.reason });
    logger.info({ checkpoint: formatFeedPosition(checkpoint) }, 'relay stopped');
  };

  const done = run();
  return {
    done,
    async stop() {
      stopping.abort();
      await done.catch(() => undefined);
    },
  };
}

/** Publishes one batch read from the feed, then moves the checkpoint past it. @returns the new checkpoint. */
async function publishBatch(
  deps: RelayDeps,
  consumer: string,
  checkpoint: FeedPosition,
  events: readonly RecordedEvent[],
  readAt: number,
): Promise<FeedPosition> {
  // Publishes are pipelined on one connection, so JetStream stores them in this order.
  await Promise.all(
    events.map((event) => {
      const message = toEventMessage(event);
      return deps.js.publish(eventSubject(deps.subjectPrefix, event.streamId), message.body, {
        msgID: event.eventId,
        headers: message.headers,
      });
    }),
  );
  if (deps.hopTimes?.enabled) markRelayHops(deps.hopTimes, events, readAt);
  const last = events.at(-1)!;
  const next = { transactionId: last.transactionId, globalPosition: last.globalPosition };
  // No wait for the WAL flush: a checkpoint lost in a crash is recovered from the stream at start.
  await storeCheckpoint(deps.pool, consumer, checkpoint, next, { waitForFlush: false });
  deps.metrics.published(events);
  deps.logger.debug({ count: events.length, checkpoint: formatFeedPosition(next) }, 'published');
  if (deps.logger.isLevelEnabled('debug')) {
    for (const event of events) deps.logger.debug({ eventId: event.eventId, ...traceFieldsOf(event.metadata) }, 'event published');
  }
  return next;
}

function markRelayHops(hopTimes: HopTimes, events: readonly RecordedEvent[], readAt: number): void {
  const ackedAt = hopClock();
  for (const event of events) {
    const key = hopKey(event.streamId, event.version);
    hopTimes.mark(key, 'relay_read', readAt);
    hopTimes.mark(key, 'relay_acked', ackedAt);
  }
}

/**
 * The last message in the stream tells how far a previous leader got; when it is past the checkpoint (the
 * leader died between the publish ack and the checkpoint), the checkpoint moves there.
 */
async function catchUpWithStream(deps: RelayDeps, consumer: string, checkpoint: FeedPosition): Promise<FeedPosition> {
  const info = await deps.jsm.streams.info(deps.streamName);
  if (info.state.last_seq === 0) return checkpoint;
  const last = await deps.jsm.streams.getMessage(deps.streamName, { seq: info.state.last_seq }).catch(() => null);
  const published = feedPositionOf(last?.header);
  if (!published || compareFeedPositions(published, checkpoint) <= 0) return checkpoint;
  deps.logger.info(
    { checkpoint: formatFeedPosition(checkpoint), published: formatFeedPosition(published) },
    'stream is ahead of the checkpoint: moving the checkpoint',
  );
  await storeCheckpoint(deps.pool, consumer, checkpoint, published);
  return published;
}
