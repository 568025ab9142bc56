import { NatsError, type JetStreamManager, type MsgRequest, type StoredMsg } from 'nats';
import type { DatabasePool } from 'slonik';
import { hasStreamErasuresPending, markStreamErased, streamErasuresUpTo, type StreamErasure } from '../event-store/event-erasures.js';
import { compareFeedPositions, formatFeedPosition, type FeedPosition } from '../event-store/recorded-event.js';
import type { Logger } from '../shared/logger.js';
import { allEventsSubject, eventSubject } from '../shared/nats.js';
import { feedPositionOf, STREAM_VERSION_HEADER } from './event-message.js';

export type StreamErasureDeps = {
  readonly pool: DatabasePool;
  readonly jsm: JetStreamManager;
  readonly logger: Logger;
  readonly streamName: string;
  readonly subjectPrefix: string;
};

/** Erasures looked up per statement. */
const ERASURES_PER_QUERY = 100;

/** JetStream API errors: no message at or after the sequence asked; no message at the sequence to delete. */
const NO_MESSAGE_FOUND = 10037;
const SEQUENCE_NOT_FOUND = 10043;

const jetStreamErrorCode = (error: unknown): number | undefined => (error instanceof NatsError ? error.api_error?.err_code : undefined);

/**
 * Deletes from the events stream the copies of the events erased in the log (docs/event-store.md,
 * "Erasure") whose erasing event is at or before `checkpoint`: the relay published it, so it published the
 * erased event before it (with its data, if it read it before the erasure committed, or already erased),
 * and no copy of that can come later. Each erasure is marked done once its copies are deleted (with erase:
 * the stored bytes are overwritten); one interrupted in between is done again, and deleting a copy that is
 * gone already is no error.
 * @returns how many erasures were done, and whether others wait for the checkpoint to pass their erasing event.
 */
export async function eraseFromStream(
  deps: StreamErasureDeps,
  checkpoint: FeedPosition,
): Promise<{ readonly erased: number; readonly waiting: boolean }> {
  let erased = 0;
  for (;;) {
    const erasures = await streamErasuresUpTo(deps.pool, checkpoint, ERASURES_PER_QUERY);
    for (const erasure of erasures) {
      const deleted = await deleteCopies(deps, erasure);
      await markStreamErased(deps.pool, [erasure.eventId]);
      deps.logger.info({ eventId: erasure.eventId, streamId: erasure.streamId, version: erasure.version, sequences: deleted }, 'erased from the events stream');
    }
    erased += erasures.length;
    if (erasures.length < ERASURES_PER_QUERY) return { erased, waiting: await hasStreamErasuresPending(deps.pool) };
  }
}

/**
 * Finds the erased event's copies on its conversation's subject, from the first message at or after its feed
 * position up to the erasing event (published after them), and deletes them: as many reads as the
 * conversation has messages in between, plus the search for the start. @returns their sequences.
 */
async function deleteCopies(deps: StreamErasureDeps, erasure: StreamErasure): Promise<number[]> {
  const subject = eventSubject(deps.subjectPrefix, erasure.streamId);
  const copies: number[] = [];
  let message = await nextMessage(deps, subject, await firstSequenceFrom(deps, erasure.position));
  while (message) {
    const version = message.header.get(STREAM_VERSION_HEADER);
    if (version === String(erasure.version)) copies.push(message.seq);
    if (version === String(erasure.erasedByVersion)) break;
    message = await nextMessage(deps, subject, message.seq + 1);
  }
  for (const seq of copies) {
    await deps.jsm.streams.deleteMessage(deps.streamName, seq, true).catch((error: unknown) => {
      if (jetStreamErrorCode(error) !== SEQUENCE_NOT_FOUND) throw error;
    });
  }
  return copies;
}

/** The first message on `subject` at or after `seq`; null when there is none. */
async function nextMessage(deps: StreamErasureDeps, subject: string, seq: number): Promise<StoredMsg | null> {
  // MSG.GET takes `next_by_subj` (nats-server 2.9); nats.js types it for direct gets only.
  const query = { seq, next_by_subj: subject } as unknown as MsgRequest;
  return deps.jsm.streams.getMessage(deps.streamName, query).catch((error: unknown) => {
    if (jetStreamErrorCode(error) === NO_MESSAGE_FOUND) return null;
    throw error;
  });
}

/**
 * The first stream sequence whose message (or the next one stored, over gaps) is at or after `position` in
 * feed order: a binary search, since the relay stores the feed in order (as the fan-out's ack floor also
 * relies on). Every copy of the event at `position` is at or after it.
 */
async function firstSequenceFrom(deps: StreamErasureDeps, position: FeedPosition): Promise<number> {
  const info = await deps.jsm.streams.info(deps.streamName);
  let low = info.state.first_seq;
  let high = info.state.last_seq + 1;
  while (low < high) {
    const middle = Math.floor((low + high) / 2);
    const message = await nextMessage(deps, allEventsSubject(deps.subjectPrefix), middle);
    const at = message && feedPositionOf(message.header);
    if (message && !at) throw new Error(`stream ${deps.streamName} message ${message.seq} has no feed position`);
    if (!message || !at || message.seq >= high || compareFeedPositions(at, position) >= 0) high = middle;
    else low = message.seq + 1;
  }
  deps.logger.debug({ position: formatFeedPosition(position), from: low }, 'looking for an erased event from this sequence');
  return low;
}
