import { Counter, Gauge, type Registry } from 'prom-client';
import { createRedeliveryCounter } from '../shared/metrics.js';

export type FanoutMetrics = {
  /** Whether this instance holds the fan-out lease (only the holder fans out). */
  leader(isLeader: boolean): void;
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
  const leader = new Gauge({ name: 'chat_fanout_leader', help: '1 while this fan-out holds the lease', registers: [registry] });
  return {
    leader: (isLeader) => leader.set(isLeader ? 1 : 0),
    published: (events) => published.inc(events),
    redelivered: createRedeliveryCounter(registry, 'fanout'),
  };
}
