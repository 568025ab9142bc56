import type { JetStreamClient, JsMsg } from 'nats';
import { ensureDurableConsumer, waitForEventStream, type DurableConsumerSpec } from './durable-consumer.js';
import { sleep } from './sleep.js';

export type ConsumerLoopSpec = {
  readonly js: JetStreamClient;
  readonly consumer: DurableConsumerSpec;
  /** Most messages handed to one call of the handler. */
  readonly maxBatch: number;
  /** Messages the consumer may hold unhandled (its pull size); at least `maxBatch`, which is the default. */
  readonly bufferSize?: number;
  /** How long a batch smaller than `maxBatch` may wait to fill: fewer, larger batches, for this much more lag. */
  readonly fillMs?: number | undefined;
  /** Logged once the consumer is attached: the line operators (and tests) read as "running". */
  readonly startedMessage: string;
  /** Called as each message arrives, before it is queued (the fan-out's hop times). */
  readonly onReceived?: (message: JsMsg) => void;
};

/** Settles each message of the batch (ack, nak or term); a rejection is fatal to the loop. */
export type BatchHandler = (batch: readonly JsMsg[]) => Promise<void>;

/**
 * The loop of a role that consumes the events stream (projector, fan-out, notifier): waits for the stream,
 * attaches the durable consumer, queues what it delivers and hands it to `handle` batch by batch.
 *
 * Guarantees:
 * - one batch at a time, in delivery order: `handle` is not called again before its last call settled;
 * - a batch is everything queued, up to `maxBatch` (after waiting `fillMs` for more, when set and short);
 * - on `stop`, the batch in flight finishes, the queued messages are handed back (nak), and the loop
 *   resolves. Handed back, they are delivered again at once, to another instance, rather than after the ack
 *   wait; except those the server already sent to this loop's outstanding pulls, which come after the wait;
 * - a consumer that nats.js gives up on rejects the loop, so the role fails and is restarted. (It does not give
 *   up on a lost connection, which reconnects, nor on a consumer deleted under it, which it keeps looking for.)
 */
export async function runConsumerLoop(spec: ConsumerLoopSpec, stop: AbortSignal, handle: BatchHandler): Promise<void> {
  await waitForEventStream(spec.consumer, stop);
  if (stop.aborted) return;
  await ensureDurableConsumer(spec.consumer);
  const consumer = await spec.js.consumers.get(spec.consumer.streamName, spec.consumer.durableName);
  const queue: JsMsg[] = [];
  let wake: (() => void) | undefined;
  let ended: { readonly error: Error | null } | undefined;
  const messages = await consumer.consume({
    max_messages: Math.max(spec.maxBatch, spec.bufferSize ?? 0),
    callback: (message) => {
      spec.onReceived?.(message);
      queue.push(message);
      wake?.();
    },
  });
  void messages.closed().then((error) => {
    ended = { error: error ?? null };
    wake?.();
  });
  const onStop = () => wake?.();
  stop.addEventListener('abort', onStop, { once: true });
  spec.consumer.logger.info({ consumer: spec.consumer.durableName }, spec.startedMessage);
  try {
    while (!stop.aborted && !ended) {
      if (queue.length === 0) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      if (spec.fillMs && queue.length < spec.maxBatch) await sleep(spec.fillMs, stop);
      await handle(queue.splice(0, spec.maxBatch));
    }
  } finally {
    stop.removeEventListener('abort', onStop);
    await messages.close().catch(() => undefined);
    for (const message of queue.splice(0)) message.nak();
  }
  if (ended && !stop.aborted) throw new Error(`the consumer ${spec.consumer.durableName} stopped`, { cause: ended.error ?? undefined });
}
