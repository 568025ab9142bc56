import { AckPolicy, DeliverPolicy, nanos, type JetStreamClient, type JetStreamManager, type JsMsg } from 'nats';
import { sql, type DatabasePool } from 'slonik';
import { readStream } from '../event-store/read-stream.js';
import { eventMessage } from '../relay/event-message.js';
import type { Logger } from '../shared/logger.js';
import { allEventsSubject } from '../shared/nats.js';
import { sleep } from '../shared/sleep.js';
import {
  applyConversationEvents,
  ProjectionGapError,
  type ProjectableEvent,
  type ReadTables,
} from './conversation/apply-conversation-events.js';

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
};

export type Projector = { readonly done: Promise<void>; stop(): Promise<void> };

/**
 * The projector: a durable JetStream pull consumer (explicit ack) that applies each event to the read tables.
 *
 * Guarantees: each event's effect lands once, whatever JetStream redelivers and in whatever order: the apply
 * and its guard (the conversation's applied version) commit together, an already-applied version is acked and
 * skipped, and a version ahead of the next expected one is preceded by the missing versions read from the
 * Postgres log, in the same transaction. An event that keeps failing is recorded with its error in
 * `projection_failures` and in the log, then terminated.
 */
export function startProjector(deps: ProjectorDeps): Projector {
  const { logger } = deps;
  const stopping = new AbortController();
  let stopMessages: (() => Promise<void>) | undefined;

  const run = async (): Promise<void> => {
    await waitForStream(deps, stopping.signal);
    if (stopping.signal.aborted) return;
    await ensureConsumer(deps);
    const consumer = await deps.js.consumers.get(deps.streamName, deps.durableName);
    const messages = await consumer.consume({ max_messages: 256 });
    stopMessages = () => messages.close().then(() => undefined);
    logger.info({ consumer: deps.durableName }, 'projecting');
    for await (const message of messages) {
      await handle(deps, message);
      if (stopping.signal.aborted) break;
    }
  };

  const done = run();
  return {
    done,
    async stop() {
      stopping.abort();
      await stopMessages?.();
      await done.catch(() => undefined);
    },
  };
}

async function handle(deps: ProjectorDeps, message: JsMsg): Promise<void> {
  const parsed = eventMessage.safeParse(safeJson(message));
  if (!parsed.success) {
    deps.logger.error({ subject: message.subject, seq: message.seq }, 'malformed event message: terminated');
    message.term('malformed event message');
    return;
  }
  const event = parsed.data;
  try {
    await projectEvent(deps, event.stream_id, event);
    message.ack();
  } catch (error) {
    const attempts = message.info.redeliveryCount;
    if (attempts < deps.maxAttempts) {
      deps.logger.warn({ err: error, eventId: event.event_id, attempts }, 'projection failed; will retry');
      message.nak(Math.min(30_000, 250 * 2 ** attempts));
      return;
    }
    deps.logger.error({ err: error, eventId: event.event_id, attempts }, 'projection failed for good: recorded');
    await deps.pool.query(sql.unsafe`
      INSERT INTO projection_failures (event_id, stream_id, version, type, error, attempts)
      VALUES (${event.event_id}, ${event.stream_id}, ${event.version}, ${event.type}, ${String(error)}, ${attempts})
      ON CONFLICT (event_id) DO UPDATE SET error = EXCLUDED.error, attempts = EXCLUDED.attempts, failed_at = now()`);
    message.term('projection failed');
  }
}

/**
 * Applies one event, first filling any gap before it from the Postgres log, in one transaction. A duplicate
 * changes nothing.
 */
export async function projectEvent(
  deps: Pick<ProjectorDeps, 'pool' | 'tables' | 'logger'>,
  streamId: string,
  event: ProjectableEvent,
): Promise<void> {
  await deps.pool.transaction(async (transaction) => {
    try {
      await applyConversationEvents(transaction, deps.tables, streamId, [event]);
    } catch (error) {
      if (!(error instanceof ProjectionGapError)) throw error;
      const missing = await readStream(transaction, streamId, { afterVersion: error.applied, toVersion: event.version });
      deps.logger.info({ streamId, from: error.applied + 1, to: event.version }, 'gap filled from the log');
      await applyConversationEvents(transaction, deps.tables, streamId, missing);
    }
  });
}

function safeJson(message: JsMsg): unknown {
  try {
    return message.json();
  } catch {
    return undefined;
  }
}

/** The relay creates the stream; a projector started first waits for it. */
async function waitForStream(deps: ProjectorDeps, signal: AbortSignal): Promise<void> {
  for (let logged = false; !signal.aborted; logged = true) {
    const exists = await deps.jsm.streams.info(deps.streamName).then(
      () => true,
      () => false,
    );
    if (exists) return;
    if (!logged) deps.logger.info({ stream: deps.streamName }, 'waiting for the events stream');
    await sleep(1_000, signal);
  }
}

async function ensureConsumer(deps: ProjectorDeps): Promise<void> {
  const exists = await deps.jsm.consumers.info(deps.streamName, deps.durableName).then(
    () => true,
    () => false,
  );
  if (exists) return;
  await deps.jsm.consumers.add(deps.streamName, {
    durable_name: deps.durableName,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    filter_subject: allEventsSubject(deps.subjectPrefix),
    ack_wait: nanos(30_000),
    max_ack_pending: 1_000,
  });
}
