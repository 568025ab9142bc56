import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg, type NatsConnection } from 'nats';
import type { DatabasePool } from 'slonik';
import { blockAt } from '../commands/conversation/blocks.js';
import { conversationStarted } from '../commands/conversation/events.js';
import { readStream } from '../event-store/read-stream.js';
import { traceFieldsOf } from '../event-store/event-metadata.js';
import { eventMessage, type EventMessage } from '../relay/event-message.js';
import type { LeaderLease } from '../shared/leader-lease.js';
import { runConsumerLoop } from '../shared/consumer-loop.js';
import { messageJson, type DurableConsumerSpec } from '../shared/durable-consumer.js';
import type { Logger } from '../shared/logger.js';
import { deliverySubject } from '../shared/nats.js';
import { hopClock, hopKey, type HopTimes } from '../shared/hop-times.js';
import { lastSurelyPublishedVersion, readAckFloor, type AckFloor } from './ack-floor.js';
import type { FanoutMetrics } from './fanout-metrics.js';
import { BoundedMap } from '../delivery/bounded-map.js';
import { blockAfter } from '../delivery/block-in-force.js';
import {
  eventFrame,
  frameableOf,
  recipientsOfConversationData,
  UnframeableEventError,
  type EventFrame,
  type FrameableEvent,
} from '../delivery/event-frames.js';
import { FRAME_CONVERSATION_WAIT_MS, readFrameConversations } from '../delivery/frame-conversations.js';
import { createParticipantDirectory, type ParticipantDirectory, type Participants } from '../delivery/participants.js';

export type FanoutDeps = {
  readonly pool: DatabasePool;
  /** Core NATS: the frames are published here, and `flush()` confirms the server has them. */
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** Only the holder fans out: two active instances would interleave one conversation's frames. */
  readonly lease: LeaderLease;
  readonly logger: Logger;
  readonly streamName: string;
  readonly subjectPrefix: string;
  readonly durableName: string;
  /** Redelivery delay of an unacknowledged event: how long a crash delays the frames in flight. */
  readonly ackWaitMs: number;
  /** Conversations whose last published version, block and participants are kept in memory. */
  readonly cacheSize: number;
  /** Events published before one flush and their acks. */
  readonly maxBatch?: number;
  readonly metrics: FanoutMetrics;
  /** Benchmarks: when enabled, each event's stream timestamp, fetch and publish (hop-times.ts). */
  readonly hopTimes?: HopTimes;
};

export type Fanout = {
  /** Runs until `stop()`: waits for the lease and the stream, then fans out. Rejects on a fatal error. */
  readonly done: Promise<void>;
  /** Finishes the batch in flight (publish, flush, ack), hands the queued events back, then stops. */
  stop(): Promise<void>;
};

const DEFAULT_MAX_BATCH = 256;
/** How long a read of the ack floor is reused. An older floor is still a floor: it only republishes more. */
const ACK_FLOOR_MAX_AGE_MS = 1_000;

/**
 * The fan-out: a durable JetStream pull consumer (explicit ack) that turns each event into each participant's
 * client frame (event-frames.ts) and publishes it as JSON on core NATS, on that participant's
 * `deliverySubject(prefix, userId)`, where the gateways holding their sockets listen. A frame depends on the
 * block in force at its event: while a conversation is blocked, its blocked user gets no frame of it.
 *
 * Guarantees:
 * - at least once to the NATS server: an event is acked only after `flush()` confirmed that the server
 *   received its frames; an event not acked (crash, NATS disconnect) is redelivered and published again;
 * - in order per conversation: frames of one conversation go out in `seq` order, each once, while this
 *   process runs. A redelivered version at or below the last one published is acked and skipped; a version
 *   ahead of the next expected one (JetStream lost or reordered some) is preceded by the missing versions
 *   read from the Postgres log. If a flush fails, the conversations of the batch are set back to before it
 *   (version and block), so what follows refills from the log rather than jumping ahead;
 * - each frame is built with the block in force at its event: known per conversation with the last version
 *   published, moved as block and unblock events pass in order, and read from the log (`blockAt`) when the
 *   conversation is taken up; so nothing of a blocked conversation reaches its blocked user after the block,
 *   and what follows an unblock does again. A block or unblock frame waits at most 1 s for the read tables to
 *   apply its event, then carries the Conversation they have (frame-conversations.ts): a projector that is
 *   down slows the fan-out, never stops it;
 * - after a restart, or for a conversation the bounded cache forgot, nothing is known of what was published:
 *   the events of the conversation after the consumer's ack floor (all before it are published) are
 *   republished from the log before the event at hand (ack-floor.ts), since events delivered to an instance
 *   that died come back only after the ack wait, possibly behind newer ones. So frames may repeat then.
 *   Gateways drop a frame whose `seq` is not above the last one they sent to a socket for that
 *   conversation, so clients see each frame once.
 * Core NATS does not store frames: a gateway that is not subscribed when a frame passes (it was
 * disconnected) misses it, and its clients recover through the catch-up read (catch-up.ts).
 * The first start of the durable delivers only events published from then on; a fresh fan-out does not
 * replay history at sockets (clients catch up from their cursor).
 */
export function startFanout(deps: FanoutDeps): Fanout {
  const { logger } = deps;
  const maxBatch = deps.maxBatch ?? DEFAULT_MAX_BATCH;
  const stopping = new AbortController();
  /** When each message was received from the consumer, kept only while hop times are. */
  const fetchedAt = deps.hopTimes?.enabled ? new WeakMap<JsMsg, number>() : undefined;
  let floor: { readonly value: Promise<AckFloor>; readonly readAt: number } | undefined;
  const state: FanoutState = {
    progress: new BoundedMap<string, ConversationProgress>(deps.cacheSize),
    participants: createParticipantDirectory({ connection: deps.pool, capacity: deps.cacheSize }),
    ackFloor: () => {
      if (!floor || Date.now() - floor.readAt > ACK_FLOOR_MAX_AGE_MS) {
        const value = readAckFloor(deps.jsm, deps.streamName, deps.durableName);
        // A failed read is not reused: the event is retried, and the next one reads again.
        value.catch(() => (floor = undefined));
        floor = { value, readAt: Date.now() };
      }
      return floor.value;
    },
  };

  const run = async (): Promise<void> => {
    const stop = AbortSignal.any([stopping.signal, deps.lease.lost]);
    logger.info('waiting for the fan-out lease');
    if (!(await deps.lease.acquire(stop))) return;
    deps.metrics.leader(true);
    try {
      const loop = {
        js: deps.js,
        consumer: consumerSpec(deps),
        startedMessage: 'fanning out',
        maxBatch,
        ...(fetchedAt && { onReceived: (message: JsMsg) => fetchedAt.set(message, hopClock()) }),
      };
      await runConsumerLoop(loop, stop, (batch) => publishBatch(deps, state, batch, fetchedAt));
    } finally {
      deps.metrics.leader(false);
    }
    if (deps.lease.lost.aborted) throw new Error('fan-out lost its lease', { cause: deps.lease.lost.reason });
  };

  const done = run();
  return {
    done,
    async stop() {
      stopping.abort();
      await done.catch(() => undefined);
    },
  };
}

/** How far a conversation's frames went out, and the block in force right after that version. */
type ConversationProgress = { readonly version: number; readonly blockedBy: number | null };

type FanoutState = {
  /** Per conversation, the last version whose frames were published (or skipped), with its block. */
  readonly progress: BoundedMap<string, ConversationProgress>;
  readonly participants: ParticipantDirectory;
  /** The consumer's ack floor, read again when older than a second. */
  ackFloor(): Promise<AckFloor>;
};

type Outcome = 'published' | 'duplicate' | 'terminate' | 'retry';

/**
 * Publishes the frames of a batch of events, then flushes once and acks. Per conversation the batch is
 * handled in order, and the guard moves as frames are published; a failed flush moves it back.
 */
async function publishBatch(
  deps: FanoutDeps,
  state: FanoutState,
  batch: readonly JsMsg[],
  fetchedAt: WeakMap<JsMsg, number> | undefined,
): Promise<void> {
  /** The messages whose frames were published, with their events, to ack after the flush. */
  const toAck = new Map<JsMsg, EventMessage>();
  /** Each conversation's progress before its first frame of this batch: where a failed flush goes back to. */
  const before = new Map<string, ConversationProgress>();
  for (const message of batch) {
    if (message.info.redelivered) deps.metrics.redelivered();
    const outcome = await handleEvent(deps, state, message, { before, published: toAck });
    switch (outcome) {
      case 'published':
        if (fetchedAt) markFanoutHops(deps.hopTimes, message, toAck.get(message), fetchedAt.get(message));
        break;
      case 'duplicate':
        message.ack();
        break;
      case 'terminate':
        message.term();
        break;
      case 'retry':
        message.nak(Math.min(30_000, 250 * 2 ** message.info.redeliveryCount));
        break;
      default: {
        const unknown: never = outcome;
        throw new Error(`unknown outcome ${String(unknown)}`);
      }
    }
  }
  if (before.size === 0 && toAck.size === 0) return;
  try {
    await deps.nc.flush();
  } catch (error) {
    deps.logger.warn({ err: error, events: toAck.size }, 'flush failed: the batch will be published again');
    for (const [conversationId, progress] of before) state.progress.set(conversationId, progress);
    for (const message of toAck.keys()) message.nak();
    return;
  }
  const traced = deps.logger.isLevelEnabled('debug');
  for (const [message, event] of toAck) {
    message.ack();
    if (traced) deps.logger.debug({ eventId: event.event_id, ...traceFieldsOf(event.metadata) }, 'event fanned out');
  }
  deps.metrics.published(toAck.size);
}

/** The event's stream timestamp, its fetch, and now: its frames just went out. */
function markFanoutHops(hopTimes: HopTimes | undefined, message: JsMsg, event: EventMessage | undefined, fetchedAt: number | undefined): void {
  if (!hopTimes || !event) return;
  const key = hopKey(event.stream_id, event.version);
  hopTimes.mark(key, 'fanout_published');
  hopTimes.mark(key, 'stored', message.info.timestampNanos / 1e6);
  if (fetchedAt !== undefined) hopTimes.mark(key, 'fanout_fetched', fetchedAt);
}

async function handleEvent(
  deps: FanoutDeps,
  state: FanoutState,
  message: JsMsg,
  batch: { readonly before: Map<string, ConversationProgress>; readonly published: Map<JsMsg, EventMessage> },
): Promise<Outcome> {
  const parsed = eventMessage.safeParse(messageJson(message));
  if (!parsed.success) {
    deps.logger.error({ subject: message.subject, seq: message.seq }, 'malformed event message: terminated');
    return 'terminate';
  }
  const event = parsed.data;
  const conversationId = event.stream_id;
  const known = state.progress.get(conversationId);
  if (known !== undefined && event.version <= known.version) return 'duplicate';

  try {
    const participants = await participantsOf(state, event);
    if (!participants) {
      deps.logger.error({ streamId: conversationId, version: event.version }, 'event of no conversation: terminated');
      return 'terminate';
    }
    let progress = known ?? (await takeUp(deps, state, conversationId, event.version));
    const pending: FrameableEvent[] = [];
    if (event.version > progress.version + 1) {
      const missing = await readStream(deps.pool, conversationId, { afterVersion: progress.version, toVersion: event.version - 1 });
      const range = { streamId: conversationId, from: progress.version + 1, to: event.version - 1 };
      if (known === undefined) deps.logger.debug(range, 'republishing what may not have been published');
      else deps.logger.info(range, 'gap filled from the log');
      pending.push(...missing.map(frameableOf));
    }
    pending.push(event);
    for (const next of pending) {
      const blockedBy = blockAfter(progress.blockedBy, next);
      const frames = await framesOf(deps, participants, next, blockedBy);
      for (const [userId, frame] of frames) deps.nc.publish(deliverySubject(deps.subjectPrefix, userId), JSON.stringify(frame));
      if (!batch.before.has(conversationId)) batch.before.set(conversationId, progress);
      progress = { version: next.version, blockedBy };
      state.progress.set(conversationId, progress);
    }
    batch.published.set(message, event);
    return 'published';
  } catch (error) {
    deps.logger.warn({ err: error, eventId: event.event_id }, 'fan-out of an event failed; will retry');
    return 'retry';
  }
}

/**
 * Where a conversation the fan-out knows nothing of is taken up: its last version surely published (after the
 * ack floor, ack-floor.ts) and the block in force right after it, from the log.
 */
async function takeUp(deps: FanoutDeps, state: FanoutState, conversationId: string, beforeVersion: number): Promise<ConversationProgress> {
  const version = await lastSurelyPublishedVersion(deps.pool, conversationId, beforeVersion, await state.ackFloor());
  return { version, blockedBy: version === 0 ? null : await blockAt(deps.pool, conversationId, version) };
}

/**
 * Each participant's frame of an event, given the block in force at it: the blocked user gets none while the
 * conversation is blocked. An event type this version does not frame is skipped (logged), not retried: it
 * would never succeed.
 */
async function framesOf(
  deps: FanoutDeps,
  participants: Participants,
  event: FrameableEvent,
  blockedBy: number | null,
): Promise<Map<number, EventFrame>> {
  const frames = new Map<number, EventFrame>();
  const conversations = await readFrameConversations(
    deps.pool,
    [{ conversationId: event.stream_id, atVersion: event.version, userIds: recipientsOfConversationData(event) }],
    FRAME_CONVERSATION_WAIT_MS,
  );
  if (!conversations.caughtUp) {
    deps.logger.warn({ streamId: event.stream_id, version: event.version }, 'read tables behind: the frame carries the Conversation they have');
  }
  try {
    for (const userId of new Set(participants)) {
      const frame = eventFrame(event, { userId, blockedBy, conversation: conversations.get(event.stream_id, userId) });
      if (frame) frames.set(userId, frame);
    }
  } catch (error) {
    if (!(error instanceof UnframeableEventError)) throw error;
    deps.logger.warn({ err: error, streamId: event.stream_id, version: event.version }, 'event has no frame: skipped');
    return new Map();
  }
  return frames;
}

async function participantsOf(
  state: FanoutState,
  event: { readonly stream_id: string; readonly type: string; readonly data: Record<string, unknown> },
): Promise<Participants | null> {
  const started = conversationStarted.safeParse({ type: event.type, data: event.data });
  if (started.success) {
    const participants: Participants = [started.data.data.user1_id, started.data.data.user2_id];
    state.participants.remember(event.stream_id, participants);
    return participants;
  }
  return state.participants.participantsOf(event.stream_id);
}

function consumerSpec(deps: FanoutDeps): DurableConsumerSpec {
    // Frames are for who is online now; history reaches clients through catch-up, not a replay at sockets.
  return { ...deps, deliverPolicy: DeliverPolicy.New };
}
