import { Counter, type Registry } from 'prom-client';

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
  const redeliveries = new Counter({
    name: 'chat_consumer_redeliveries_total',
    help: 'JetStream messages delivered more than once to this consumer',
    labelNames: ['consumer'],
    registers: [registry],
  });
  return {
    published: (events) => published.inc(events),
    redelivered: () => redeliveries.inc({ consumer: 'fanout' }),
  };
}
