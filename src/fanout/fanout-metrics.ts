import { Counter, type Registry } from 'prom-client';
import { createRedeliveryCounter } from '../shared/metrics.js';

export type FanoutMetrics = {
  /** Events whose frames were published, flushed and acked. */
  published(events: number): void;
  /** A delivery JetStream had made before (a crash, a nak, an ack that did not arrive). */
  redelivered(): void;
};

export function createFanoutMetrics(registry: Registry): FanoutMetrics {
  const published = new Counter({
    name: 'chat_fanout_events_total',
    help: 'events whose frames were published to both participants, flushed and acked',
    registers: [registry],
  });
  return {
    published: (events) => published.inc(events),
    redelivered: createRedeliveryCounter(registry, 'fanout'),
  };
}
