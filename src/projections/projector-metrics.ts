import { Counter, Histogram, type Registry } from 'prom-client';
import { createRedeliveryCounter, LATENCY_BUCKETS_SECONDS } from '../shared/metrics.js';

export type ProjectorMetrics = {
  /** A delivery JetStream had made before (a crash, a nak, an ack that did not arrive). */
  redelivered(): void;
  /** Events committed to the read tables; `createdAt` is each event's append time (epoch ms). */
  projected(createdAt: readonly number[]): void;
  failed(): void;
};

export function createProjectorMetrics(registry: Registry): ProjectorMetrics {
  const projected = new Counter({
    name: 'chat_projector_events_total',
    help: 'events committed to the read tables (duplicates included: they are acked once the guard skips them)',
    registers: [registry],
  });
  const lag = new Histogram({
    name: 'chat_projector_lag_seconds',
    help: 'from the append (events.created_at) to the projection commit',
    buckets: LATENCY_BUCKETS_SECONDS,
    registers: [registry],
  });
  const failures = new Counter({
    name: 'chat_projection_failures_total',
    help: 'events recorded in projection_failures after their last attempt',
    registers: [registry],
  });
  return {
    redelivered: createRedeliveryCounter(registry, 'projector'),
    projected(createdAt) {
      const now = Date.now();
      projected.inc(createdAt.length);
      for (const at of createdAt) lag.observe((now - at) / 1_000);
    },
    failed: () => failures.inc(),
  };
}
