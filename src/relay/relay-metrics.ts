import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { FeedProgress } from '../event-store/feed-checkpoint.js';
import type { RecordedEvent } from '../event-store/recorded-event.js';
import { LATENCY_BUCKETS_SECONDS } from '../shared/metrics.js';

export type RelayMetrics = {
  leader(isLeader: boolean): void;
  /** Events JetStream acknowledged (their checkpoint is stored). */
  published(events: readonly RecordedEvent[]): void;
  /** Reads the log's head and the relay's checkpoint when Prometheus scrapes (any instance, leader or not). */
  watchFeedProgress(read: () => Promise<FeedProgress>): void;
};

export function createRelayMetrics(registry: Registry): RelayMetrics {
  const leader = new Gauge({ name: 'chat_relay_leader', help: '1 while this relay holds the lease', registers: [registry] });
  const published = new Counter({
    name: 'chat_relay_events_published_total',
    help: 'events published to JetStream and acknowledged',
    registers: [registry],
  });
  const lag = new Histogram({
    name: 'chat_relay_lag_seconds',
    help: 'from the appending transaction start (events.created_at) to the JetStream ack',
    buckets: LATENCY_BUCKETS_SECONDS,
    registers: [registry],
  });
  let readProgress: (() => Promise<FeedProgress>) | undefined;
  let reading: Promise<FeedProgress | null> | undefined;
  /** One read per scrape for both gauges; a failed one leaves them out (the readiness check names Postgres). */
  const progress = (): Promise<FeedProgress | null> =>
    (reading ??= (readProgress?.() ?? Promise.resolve(null)).catch(() => null).finally(() => (reading = undefined)));
  const positionGauge = (name: string, help: string, pick: (progress: FeedProgress) => bigint | null) =>
    new Gauge({
      name,
      help,
      registers: [registry],
      async collect() {
        this.reset();
        const read = await progress();
        const position = read && pick(read);
        if (position !== null && position !== undefined) this.set(Number(position));
      },
    });
  positionGauge('chat_event_log_head_position', 'global_position of the last committed event in feed order', (read) => read.head);
  positionGauge('chat_relay_checkpoint_position', 'global_position of the relay checkpoint: equal to the head once all is published', (read) => read.checkpoint);
  return {
    watchFeedProgress(read) {
      readProgress = read;
    },
    leader: (isLeader) => leader.set(isLeader ? 1 : 0),
    published(events) {
      const now = Date.now();
      published.inc(events.length);
      for (const event of events) lag.observe((now - event.createdAt) / 1_000);
    },
  };
}
