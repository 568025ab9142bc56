import { DeliverPolicy, type JsMsg, type NatsConnection } from 'nats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureEventStream } from '../../../src/relay/event-stream.js';
import { runConsumerLoop, type ConsumerLoopSpec } from '../../../src/shared/consumer-loop.js';
import { createLogger } from '../../../src/shared/logger.js';
import { eventSubject } from '../../../src/shared/nats.js';
import { connectTestNats } from '../../support/jetstream.js';
import { natsUrl, testPrefix, testStreamName } from '../../support/infra.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * The loop the projector, the fan-out and the notifier share (consumer-loop.ts), on the real NATS server:
 * one batch at a time in delivery order, queued messages handed back at once on stop, and a consumer that
 * ends by itself failing the loop.
 */

let nc: NatsConnection;

beforeAll(async () => {
  nc = await connectTestNats(natsUrl());
});

afterAll(async () => {
  await nc?.close();
});

/** A fresh stream holding `count` messages whose bodies are 1..count, and the spec of a loop on it. */
async function streamOf(count: number, loop: { maxBatch: number; bufferSize?: number }, ackWaitMs = 120_000): Promise<ConsumerLoopSpec> {
  const prefix = testPrefix();
  const streamName = testStreamName(prefix);
  const jsm = await nc.jetstreamManager();
  await ensureEventStream(jsm, { name: streamName, subjectPrefix: prefix, retentionDays: 1, replicas: 1 });
  const js = nc.jetstream();
  for (let body = 1; body <= count; body++) await js.publish(eventSubject(prefix, 'loop'), String(body));
  const consumer = {
    jsm,
    logger: createLogger({ role: 'test', level: 'silent' }),
    streamName,
    subjectPrefix: prefix,
    durableName: 'loop',
    ackWaitMs,
    deliverPolicy: DeliverPolicy.All,
  };
  return { js, consumer, startedMessage: 'consuming', ...loop };
}

const bodyOf = (message: JsMsg) => Number(message.string());

/** A gate the handler waits at until the test opens it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((resolve) => (open = resolve));
  return { wait, open };
}

describe('the consumer loop', () => {
  it('hands batches of at most maxBatch, one at a time, in delivery order', async () => {
    const spec = await streamOf(60, { maxBatch: 7 });
    const stop = new AbortController();
    const seen: number[] = [];
    const sizes: number[] = [];
    let inFlight = 0;
    let mostInFlight = 0;
    const done = runConsumerLoop(spec, stop.signal, async (batch) => {
      mostInFlight = Math.max(mostInFlight, ++inFlight);
      sizes.push(batch.length);
      // Slow enough that deliveries queue up behind the batch in flight.
      await new Promise((resolve) => setTimeout(resolve, 5));
      for (const message of batch) {
        seen.push(bodyOf(message));
        message.ack();
      }
      inFlight--;
    });
    await waitUntil('every message to be handled', () => Promise.resolve(seen.length >= 60), { timeoutMs: 30_000 });
    stop.abort();
    await done;
    expect(seen).toEqual(Array.from({ length: 60 }, (_, index) => index + 1));
    expect(mostInFlight).toBe(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(7);
    // Deliveries queued behind the slow handler: some batch took more than one message.
    expect(Math.max(...sizes)).toBeGreaterThan(1);
  });

  it('on stop finishes the batch in flight and hands the queued messages back: none is lost', async () => {
    const spec = await streamOf(10, { maxBatch: 2, bufferSize: 10 }, 5_000);
    const stop = new AbortController();
    const held = gate();
    const handled: number[] = [];
    const first = runConsumerLoop(spec, stop.signal, async (batch) => {
      await held.wait;
      for (const message of batch) {
        handled.push(bodyOf(message));
        message.ack();
      }
    });
    const delivered = () =>
      spec.consumer.jsm.consumers.info(spec.consumer.streamName, spec.consumer.durableName).then(
        (info) => info.delivered.stream_seq,
        () => 0, // not created yet
      );
    await waitUntil('all ten to be delivered to the first loop', async () => (await delivered()) >= 10, { timeoutMs: 30_000 });
    stop.abort();
    held.open();
    await first;
    expect(handled).toEqual([1, 2]);

    // Handed back (nak), they come again at once; any the server had already routed to the first loop's
    // outstanding pulls come after the ack wait (5 s). Either way each reaches the second loop, and 1 and 2,
    // acked, do not.
    const again: number[] = [];
    const restop = new AbortController();
    const second = runConsumerLoop(spec, restop.signal, (batch) => {
      for (const message of batch) {
        again.push(bodyOf(message));
        message.ack();
      }
      return Promise.resolve();
    });
    await waitUntil('the queued eight to be delivered again', () => Promise.resolve(new Set(again).size >= 8), { timeoutMs: 30_000 });
    restop.abort();
    await second;
    expect([...new Set(again)].sort((a, b) => a - b)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
  });
});
