import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from 'nats';
import type { Redis } from 'ioredis';
import type { DatabasePool } from 'slonik';
import { currentBlocks } from '../commands/conversation/blocks.js';
import { createParticipantDirectory, type ParticipantDirectory, type Participants } from '../delivery/participants.js';
import { eventMessage } from '../relay/event-message.js';
import { runConsumerLoop } from '../shared/consumer-loop.js';
import { messageJson, type DurableConsumerSpec } from '../shared/durable-consumer.js';
import type { Logger } from '../shared/logger.js';
import { notificationFor, recipientOf, sentMessageOf, type SentMessage } from './notification.js';
import type { NotifierMetrics, NotifierOutcome } from './notifier-metrics.js';
import { usersWithOpenSockets } from './open-sockets.js';
import { publishOnce } from './publish-once.js';

export type NotifierDeps = {
  readonly pool: DatabasePool;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** Reads the gateways' socket leases, records what was notified and publishes. */
  readonly redis: Redis;
  readonly logger: Logger;
  readonly streamName: string;
  readonly subjectPrefix: string;
  readonly durableName: string;
  /** Redelivery delay of an unacknowledged event: how long a crash delays the notifications in flight. */
  readonly ackWaitMs: number;
  /** The Redis channel Matcha listens on; null turns notifications off (events are acked, nothing published). */
  readonly channel: string | null;
  /** The gateways' REDIS_KEY_PREFIX: where the socket leases are, and where the notified keys go. */
  readonly keyPrefix: string;
  /** How long a message's notified key lives: redeliveries later than this would notify again. */
  readonly notifiedTtlSeconds: number;
  /** Conversations whose participants stay in memory. */
  readonly cacheSize: number;
  readonly clock: () => Date;
  readonly metrics: NotifierMetrics;
  /** Events handled together: one block lookup, one socket lookup and one Redis round trip of publishes. */
  readonly maxBatch?: number;
};

export type Notifier = {
  /** Runs until `stop()`; rejects on a fatal error. */
  readonly done: Promise<void>;
  /** Finishes the batch in flight (publish, ack), hands the queued events back, then stops. */
  stop(): Promise<void>;
};

const DEFAULT_MAX_BATCH = 256;

/**
 * The notifier: a durable JetStream pull consumer (explicit ack) that tells Matcha, on its Redis channel,
 * of each message sent to a user with no open socket (notification.ts says when a message gets none).
 *
 * Guarantees:
 * - once per message: the notification is published by a Redis script together with the message's
 *   notified key (SET NX, publish-once.ts), and the event is acked only after that script answered. An event
 *   redelivered after a crash, a failed batch, or republished by a relay, or taken by a second notifier
 *   instance, finds the key and publishes nothing, for as long as the key lives (`notifiedTtlSeconds`);
 * - at least once to Redis: an event whose script did not answer (Redis down) is handed back and retried,
 *   with backoff. Redis pub/sub keeps nothing: a notification published while Matcha's listener is not
 *   subscribed is lost for Matcha;
 * - the recipient's sockets, the block and the erasure are looked at when the event is handled, not when the
 *   message was sent: an event redelivered after a crash is judged again, and one the notifier saw while
 *   the recipient was online and did not ack may notify once he has left;
 * - never from a replay: the replay CLI rebuilds read tables from the log and publishes nothing to JetStream.
 * The first start of the durable delivers only events published from then on (DeliverPolicy.New): a fresh
 * notifier does not notify the stream's retained history, days of messages long read. From then on the
 * durable keeps its place, so messages sent while the notifier was down are notified when it is back.
 */
export function startNotifier(deps: NotifierDeps): Notifier {
  const stopping = new AbortController();
  const participants = createParticipantDirectory({ connection: deps.pool, capacity: deps.cacheSize });
  if (deps.channel === null) deps.logger.warn('notifications are off (NOTIFICATIONS_CHANNEL is empty): messages are acked, nothing is published');
  else deps.logger.info({ channel: deps.channel }, 'notifications go to this Redis channel');
  const done = runConsumerLoop(
    { js: deps.js, consumer: consumerSpec(deps), startedMessage: 'notifying', maxBatch: deps.maxBatch ?? DEFAULT_MAX_BATCH },
    stopping.signal,
    (batch) => notifyBatch(deps, participants, batch),
  );
  return {
    done,
    async stop() {
      stopping.abort();
      await done.catch(() => undefined);
    },
  };
}

type Delivery = { readonly message: JsMsg; readonly sent: SentMessage };

/** Handles a batch: other events are acked at once, the messages once their notifications are settled. */
async function notifyBatch(deps: NotifierDeps, participants: ParticipantDirectory, batch: readonly JsMsg[]): Promise<void> {
  const { channel } = deps;
  const deliveries: Delivery[] = [];
  for (const message of batch) {
    if (message.info.redelivered) deps.metrics.redelivered();
    const parsed = eventMessage.safeParse(messageJson(message));
    if (!parsed.success) {
      deps.logger.error({ subject: message.subject, seq: message.seq }, 'malformed event message: terminated');
      message.term('malformed event message');
      continue;
    }
    const sent = sentMessageOf(parsed.data);
    if (!sent) {
      message.ack();
    } else if (channel === null) {
      message.ack();
      deps.metrics.handled('notifications_off');
    } else {
      deliveries.push({ message, sent });
    }
  }
  if (deliveries.length === 0 || channel === null) return;
  let outcomes: NotifierOutcome[];
  try {
    outcomes = await notifyAll(deps, channel, participants, deliveries.map(({ sent }) => sent));
  } catch (error) {
    deps.logger.warn({ err: error, messages: deliveries.length }, 'notifying a batch failed; its events will be retried');
    for (const { message } of deliveries) message.nak(Math.min(30_000, 250 * 2 ** message.info.redeliveryCount));
    return;
  }
  deliveries.forEach(({ message, sent }, index) => {
    const outcome = outcomes[index] ?? 'no_recipient';
    if (outcome === 'no_recipient') deps.logger.error({ conversationId: sent.conversationId, messageId: sent.messageId }, 'message of no known recipient: not notified');
    message.ack();
    deps.metrics.handled(outcome);
  });
}

/** Looks up what the batch's messages need (participants, blocks, sockets), then publishes what is due. */
async function notifyAll(
  deps: NotifierDeps,
  channel: string,
  directory: ParticipantDirectory,
  messages: readonly SentMessage[],
): Promise<NotifierOutcome[]> {
  const live = messages.filter((message) => message.content !== null);
  const conversationIds = [...new Set(live.map((message) => message.conversationId))];
  const participants = new Map<string, Participants | null>();
  for (const id of conversationIds) participants.set(id, await directory.participantsOf(id));
  const blocks = await currentBlocks(deps.pool, conversationIds);
  const recipients = live.flatMap((message) => {
    const pair = participants.get(message.conversationId);
    const recipient = pair && recipientOf(message, pair);
    return recipient ? [recipient] : [];
  });
  const online = await usersWithOpenSockets(deps.redis, deps.keyPrefix, recipients, deps.clock());
  const options = { keyPrefix: deps.keyPrefix, channel, ttlSeconds: deps.notifiedTtlSeconds };
  return Promise.all(
    messages.map(async (message): Promise<NotifierOutcome> => {
      const facts = {
        participants: participants.get(message.conversationId) ?? null,
        blockedBy: blocks.get(message.conversationId) ?? null,
        online,
      };
      const decided = notificationFor(message, facts);
      if (typeof decided === 'string') return decided;
      const published = await publishOnce(deps.redis, options, decided);
      if (published === 'published') deps.logger.debug({ messageId: message.messageId, to: decided.to_user_id }, 'notified');
      return published === 'published' ? 'notified' : 'already_notified';
    }),
  );
}

function consumerSpec(deps: NotifierDeps): DurableConsumerSpec {
  return { ...deps, deliverPolicy: DeliverPolicy.New };
}
