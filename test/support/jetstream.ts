import { connect, type NatsConnection } from 'nats';
import { eventMessage, type EventMessage } from '../../src/relay/event-message.js';
import { sleep } from '../../src/shared/sleep.js';
import { natsCredentials } from './infra.js';

export type StoredEventMessage = EventMessage & { readonly msgId: string | undefined; readonly streamSequence: number };

/** A connection of the test itself, as the operator: it looks at streams and stands in for roles. */
export async function connectTestNats(url: string): Promise<NatsConnection> {
  const { user, password } = natsCredentials('operator');
  return connect({ servers: url.split(','), name: 'test', user, pass: password });
}

/** How many messages the stream stores now (0 when it does not exist yet). */
export async function storedCount(nc: NatsConnection, stream: string): Promise<number> {
  const jsm = await nc.jetstreamManager();
  return jsm.streams.info(stream).then(
    (info) => info.state.messages,
    () => 0,
  );
}

/** Waits until the stream stores at least `count` messages; fails after `timeoutMs`. */
export async function waitForStoredCount(
  nc: NatsConnection,
  stream: string,
  count: number,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let stored = 0;
  while ((stored = await storedCount(nc, stream)) < count) {
    if (Date.now() > deadline) throw new Error(`stream ${stream} holds ${stored} messages, expected ${count}`);
    await sleep(100);
  }
}

/**
 * The durable consumer has acked every message the stream stores: none is pending, none will be redelivered.
 * False while the consumer does not exist yet.
 */
export async function consumerAckedAll(nc: NatsConnection, stream: string, durable: string): Promise<boolean> {
  const jsm = await nc.jetstreamManager();
  const [info, consumer] = await Promise.all([jsm.streams.info(stream), jsm.consumers.info(stream, durable).catch(() => null)]);
  return consumer !== null && consumer.num_ack_pending === 0 && consumer.ack_floor.stream_seq === info.state.last_seq;
}

/** Every message the stream stores, in stream order, read with an ordered consumer. */
export async function readAllStored(nc: NatsConnection, stream: string): Promise<StoredEventMessage[]> {
  const total = await storedCount(nc, stream);
  const out: StoredEventMessage[] = [];
  if (total === 0) return out;
  const consumer = await nc.jetstream().consumers.get(stream);
  const messages = await consumer.consume({ max_messages: 1000 });
  for await (const message of messages) {
    out.push({
      ...eventMessage.parse(message.json()),
      msgId: message.headers?.get('Nats-Msg-Id'),
      streamSequence: message.seq,
    });
    if (out.length >= total) break;
  }
  await messages.close();
  return out;
}
