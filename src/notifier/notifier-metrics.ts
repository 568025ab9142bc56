import { Counter, type Registry } from 'prom-client';
import { createRedeliveryCounter } from '../shared/metrics.js';
import type { Silence } from './notification.js';

/** What became of a `MessageSent`: notified, or why not. */
export type NotifierOutcome = 'notified' | 'already_notified' | 'notifications_off' | Silence;

export type NotifierMetrics = {
  /** A `MessageSent` handled and acked, with what became of it. */
  handled(outcome: NotifierOutcome): void;
  /** A delivery JetStream had made before (a crash, a nak, an ack that did not arrive). */
  redelivered(): void;
};

export function createNotifierMetrics(registry: Registry): NotifierMetrics {
  const messages = new Counter({
    name: 'chat_notifier_messages_total',
    help: 'messages the notifier handled, by outcome: notified, already_notified (a redelivery), recipient_online, blocked, erased, no_recipient, notifications_off',
    labelNames: ['outcome'],
    registers: [registry],
  });
  return {
    handled: (outcome) => messages.inc({ outcome }),
    redelivered: createRedeliveryCounter(registry, 'notifier'),
  };
}
