import { nanos, RetentionPolicy, StorageType, type JetStreamManager, type StreamConfig } from 'nats';
import { allEventsSubject } from '../shared/nats.js';

export type EventStreamSettings = {
  readonly name: string;
  readonly subjectPrefix: string;
  readonly retentionDays: number;
  readonly replicas: number;
};

/** JetStream drops a repeated `Nats-Msg-Id` seen within this window (a relay crash between ack and checkpoint). */
export const DUPLICATE_WINDOW_MS = 2 * 60_000;

/**
 * Creates the events stream, or updates it to these settings. JetStream is transport, not truth: what ages
 * out of it is read back from the Postgres log.
 */
export async function ensureEventStream(jsm: JetStreamManager, settings: EventStreamSettings): Promise<void> {
  const config: Partial<StreamConfig> & { name: string } = {
    name: settings.name,
    subjects: [allEventsSubject(settings.subjectPrefix)],
    storage: StorageType.File,
    retention: RetentionPolicy.Limits,
    max_age: nanos(settings.retentionDays * 24 * 3_600_000),
    duplicate_window: nanos(DUPLICATE_WINDOW_MS),
    num_replicas: settings.replicas,
  };
  const existing = await jsm.streams.info(settings.name).catch((error: unknown) => {
    if (isNotFound(error)) return null;
    throw error;
  });
  if (existing) await jsm.streams.update(settings.name, config);
  else await jsm.streams.add(config);
}

function isNotFound(error: unknown): boolean {
  return error instanceof Error && /stream not found/i.test(error.message);
}
