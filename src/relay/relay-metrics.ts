import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { RecordedEvent } from '../event-store/recorded-event.js';
import { LATENCY_BUCKETS_SECONDS } from '../shared/metrics.js';

export type RelayMetrics = {
  leader(isLeader: boolean): void;
  /** Events JetStream acknowledged (their checkpoint is stored). */
  published(events: readonly RecordedEvent[]): void;
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
  return {
    leader: (isLeader) => leader.set(isLeader ? 1 : 0),
    published(events) {
      const now = Date.now();
      published.inc(events.length);
      for (const event of events) lag.observe((now - event.createdAt) / 1_000);
    },
  };
}
