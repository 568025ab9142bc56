import { DeliverPolicy, type JetStreamClient, type JetStreamManager, type JsMsg } from 'nats';
import { sql, type DatabasePool } from 'slonik';
import { traceFieldsOf } from '../event-store/event-metadata.js';
import { readStream } from '../event-store/read-stream.js';
import { eventMessage, type EventMessage } from '../relay/event-message.js';
import { runConsumerLoop } from '../shared/consumer-loop.js';
import { messageJson, type DurableConsumerSpec } from '../shared/durable-consumer.js';
import type { Logger } from '../shared/logger.js';
import { applyConversationEvents, type ProjectableEvent, type ReadTables } from './conversation/apply-conversation-events.js';
import type { ProjectorMetrics } from './projector-metrics.js';
import { CONVERSATIONS_PROJECTION, lockGenerations } from './read-model-generations.js';

export type ProjectorDeps = {
  readonly pool: DatabasePool;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly logger: Logger;
  readonly streamName: string;
  readonly subjectPrefix: string;
  readonly durableName: string;
  readonly tables: ReadTables;
  /** Deliveries of one event before it is recorded in `projection_failures` and given up. */
  readonly maxAttempts: number;
  /** Most events applied in one transaction. */
  readonly batchSize: number;
  /**
   * How long a batch may keep filling after its first event arrived: fewer, larger transactions under load,
   * for at most this much more projection lag (what a query's read-consistency wait may add).
   */
  readonly batchWaitMs?: number;
  /**
   * How long JetStream waits for an ack before redelivering. After a crash, the dead process's unacked
   * deliveries hold the consumer's pending slots this long; a redelivery of a slow batch is only a duplicate.
   */
  readonly ackWaitMs: number;
  readonly metrics: ProjectorMetrics;
};

export type Projector = { readonly done: Promise<void>; stop(): Promise<void> };

type Delivery = { readonly message: JsMsg; readonly event: EventMessage };

/**
 * The projector: a durable JetStream pull consumer (explicit ack) that applies events to the read tables.
 *
 * Guarantees: each event's effect lands once, whatever JetStream redelivers and in whatever order: the apply
 * and its guard (the conversation's applied version) commit together, an already-applied version is acked and
 * skipped, and a version ahead of the next expected one is preceded by the missing versions read from the
 * Postgres log, in the same transaction. Messages are acked only after their transaction commits. What has
 * arrived is applied as one batch (one transaction); when a batch fails, its events are retried one by one so
 * that one bad event cannot hold the others back, and an event that keeps failing is recorded with its error
 * in `projection_failures` and in the log, then terminated.
 */
export function startProjector(deps: ProjectorDeps): Projector {
  const stopping = new AbortController();
  const done = runConsumerLoop(
    { js: deps.js, consumer: consumerSpec(deps), startedMessage: 'projecting', maxBatch: deps.batchSize, bufferSize: 256, fillMs: deps.batchWaitMs },
    stopping.signal,
    (batch) => handleBatch(deps, batch),
  );
  return {
    done,
    async stop() {
      stopping.abort();
      await done.catch(() => undefined);
    },
  };
}

async function handleBatch(deps: ProjectorDeps, messages: readonly JsMsg[]): Promise<void> {
  const deliveries: Delivery[] = [];
  for (const message of messages) {
    if (message.info.redelivered) deps.metrics.redelivered();
    const parsed = eventMessage.safeParse(messageJson(message));
    if (parsed.success) {
      deliveries.push({ message, event: parsed.data });
    } else {
      deps.logger.error({ subject: message.subject, seq: message.seq }, 'malformed event message: terminated');
      message.term('malformed event message');
    }
  }
  if (deliveries.length === 0) return;
  try {
    await projectEvents(deps, deliveries.map(({ event }) => toProjectable(event)));
    for (const { message } of deliveries) message.ack();
    deps.metrics.projected(deliveries.map(({ event }) => Date.parse(event.created_at)));
    logProjected(deps.logger, deliveries);
  } catch (error) {
    if (deliveries.length > 1) {
      deps.logger.warn({ err: error, events: deliveries.length }, 'batch failed; applying its events one by one');
      for (const delivery of deliveries) await handleOne(deps, delivery);
      return;
    }
    const [only] = deliveries;
    if (only) await failed(deps, only, error);
  }
}

async function handleOne(deps: ProjectorDeps, delivery: Delivery): Promise<void> {
  try {
    await projectEvents(deps, [toProjectable(delivery.event)]);
    delivery.message.ack();
    deps.metrics.projected([Date.parse(delivery.event.created_at)]);
    logProjected(deps.logger, [delivery]);
  } catch (error) {
    await failed(deps, delivery, error);
  }
}

/** At debug, each event committed, with the trace of the request that caused it (event-metadata.ts). */
function logProjected(logger: Logger, deliveries: readonly Delivery[]): void {
  if (!logger.isLevelEnabled('debug')) return;
  for (const { event } of deliveries) logger.debug({ eventId: event.event_id, ...traceFieldsOf(event.metadata) }, 'event projected');
}

/** Retries with backoff up to `maxAttempts` deliveries, then records the failure and terminates the message. */
async function failed(deps: ProjectorDeps, { message, event }: Delivery, error: unknown): Promise<void> {
  const attempts = message.info.redeliveryCount;
  if (attempts < deps.maxAttempts) {
    deps.logger.warn({ err: error, eventId: event.event_id, attempts }, 'projection failed; will retry');
    message.nak(Math.min(30_000, 250 * 2 ** attempts));
    return;
  }
  try {
    await deps.pool.query(sql.unsafe`
      INSERT INTO projection_failures (event_id, stream_id, version, type, error, attempts)
      VALUES (${event.event_id}, ${event.stream_id}, ${event.version}, ${event.type}, ${String(error)}, ${attempts})
      ON CONFLICT (event_id) DO UPDATE SET error = EXCLUDED.error, attempts = EXCLUDED.attempts, failed_at = now()`);
  } catch (recordError) {
    // Postgres itself is failing: keep the event for later rather than terminate it unrecorded.
    deps.logger.error({ err: recordError, eventId: event.event_id }, 'could not record a projection failure; will retry');
    message.nak(30_000);
    return;
  }
  deps.metrics.failed();
  deps.logger.error({ err: error, eventId: event.event_id, attempts }, 'projection failed for good: recorded');
  message.term('projection failed');
}

function toProjectable(event: EventMessage): ProjectableEvent {
  return { streamId: event.stream_id, version: event.version, type: event.type, data: event.data };
}

/**
 * Applies events in one transaction, first filling any gap before them from the Postgres log. Duplicates
 * change nothing. The transaction first takes the generation row FOR SHARE, so a replay's switch never falls
 * between this write and its own last catch-up.
 * @returns how many events were applied (not skipped).
 */
export async function projectEvents(
  deps: Pick<ProjectorDeps, 'pool' | 'tables' | 'logger'>,
  events: readonly ProjectableEvent[],
): Promise<number> {
  return deps.pool.transaction(async (transaction) => {
    await lockGenerations(transaction, CONVERSATIONS_PROJECTION, 'share');
    return applyConversationEvents(transaction, deps.tables, events, {
      readMissing: async (streamId, afterVersion, toVersion) => {
        deps.logger.info({ streamId, from: afterVersion + 1, to: toVersion }, 'gap filled from the log');
        return readStream(transaction, streamId, { afterVersion, toVersion });
      },
    });
  });
}

function consumerSpec(deps: ProjectorDeps): DurableConsumerSpec {
  return { ...deps, deliverPolicy: DeliverPolicy.All };
}
