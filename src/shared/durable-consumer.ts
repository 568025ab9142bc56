import { AckPolicy, nanos, type DeliverPolicy, type JetStreamManager, type JsMsg } from 'nats';
import type { Logger } from './logger.js';
import { allEventsSubject } from './nats.js';
import { sleep } from './sleep.js';

/** A durable pull consumer on the events stream, as the projector and the fan-out each keep one. */
export type DurableConsumerSpec = {
  readonly jsm: JetStreamManager;
  readonly logger: Logger;
  readonly streamName: string;
  readonly subjectPrefix: string;
  readonly durableName: string;
  /** Redelivery delay of an unacknowledged event: how long a crash delays the events in flight. */
  readonly ackWaitMs: number;
  /** Where a consumer created for the first time starts. */
  readonly deliverPolicy: DeliverPolicy;
};

/** The relay creates the stream; a consumer role started first waits for it (until `signal` aborts). */
export async function waitForEventStream(spec: DurableConsumerSpec, signal: AbortSignal): Promise<void> {
  for (let logged = false; !signal.aborted; logged = true) {
    const exists = await spec.jsm.streams.info(spec.streamName).then(
      () => true,
      () => false,
    );
    if (exists) return;
    if (!logged) spec.logger.info({ stream: spec.streamName }, 'waiting for the events stream');
    await sleep(1_000, signal);
  }
}

/** Creates the durable consumer (explicit ack), or brings an existing one's ack wait to the configured value. */
export async function ensureDurableConsumer(spec: DurableConsumerSpec): Promise<void> {
  const ackWait = nanos(spec.ackWaitMs);
  const existing = await spec.jsm.consumers.info(spec.streamName, spec.durableName).catch(() => null);
  if (existing) {
    if (existing.config.ack_wait !== ackWait) {
      await spec.jsm.consumers.update(spec.streamName, spec.durableName, { ack_wait: ackWait });
    }
    return;
  }
  await spec.jsm.consumers.add(spec.streamName, {
    durable_name: spec.durableName,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: spec.deliverPolicy,
    filter_subject: allEventsSubject(spec.subjectPrefix),
    ack_wait: ackWait,
    max_ack_pending: 1_000,
  });
}

/** The message's JSON body, or undefined when it is not JSON (the caller's schema then refuses it). */
export function messageJson(message: JsMsg): unknown {
  try {
    return message.json();
  } catch {
    return undefined;
  }
}

/** Messages of the stream the consumer has yet to ack: not delivered yet, plus delivered and unacked. */
export async function readConsumerLag(jsm: JetStreamManager, stream: string, durable: string): Promise<number> {
  const info = await jsm.consumers.info(stream, durable);
  return info.num_pending + info.num_ack_pending;
}
