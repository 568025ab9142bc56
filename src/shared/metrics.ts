import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';

/**
 * One Prometheus registry per role process, with the process metrics (resident memory, CPU, event-loop lag,
 * open files) and a `role` label on every series. Roles create their own metrics on it and pass it down.
 */
export function createMetricsRegistry(role: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  collectDefaultMetrics({ register: registry });
  return registry;
}

/** Seconds, for latencies from a millisecond to ten seconds. */
export const LATENCY_BUCKETS_SECONDS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * `chat_consumer_redeliveries_total{consumer}`, shared by the roles that hold a durable JetStream consumer
 * (projector, fan-out): returns the call that counts one redelivered message of `consumer`.
 */
export function createRedeliveryCounter(registry: Registry, consumer: string): () => void {
  const redeliveries = new Counter({
    name: 'chat_consumer_redeliveries_total',
    help: 'JetStream messages delivered more than once to this consumer',
    labelNames: ['consumer'],
    registers: [registry],
  });
  return () => redeliveries.inc({ consumer });
}

/**
 * `chat_consumer_lag_messages{consumer}`, read from JetStream when Prometheus scrapes: what the durable consumer
 * has not acked yet. Left out of a scrape while the consumer does not exist or NATS does not answer.
 */
export function watchConsumerLag(registry: Registry, consumer: string, read: () => Promise<number>): void {
  new Gauge({
    name: 'chat_consumer_lag_messages',
    help: 'messages of the events stream this durable consumer has not acked yet (pending plus unacked)',
    labelNames: ['consumer'],
    registers: [registry],
    async collect() {
      this.reset();
      const lag = await read().catch(() => null);
      if (lag !== null) this.set({ consumer }, lag);
    },
  });
}

/** `chat_role_ready`: 1 when every readiness check of the role passes at scrape time (what `/ready` answers), else 0. */
export function watchReadiness(registry: Registry, ready: () => Promise<boolean>): void {
  new Gauge({
    name: 'chat_role_ready',
    help: '1 when the role\'s dependencies answer (GET /ready would say ready), 0 otherwise',
    registers: [registry],
    async collect() {
      this.set((await ready()) ? 1 : 0);
    },
  });
}
