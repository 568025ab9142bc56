import { headers, type MsgHdrs } from 'nats';
import { z } from 'zod';
import {
  formatFeedPosition,
  parseFeedPosition,
  type FeedPosition,
  type RecordedEvent,
} from '../event-store/recorded-event.js';

/**
 * The NATS form of a log event: JSON body plus headers. `Nats-Msg-Id` (the event id) lets JetStream drop a
 * republished event; `Chat-Feed-Position` lets a relay that starts find where the stream ends.
 */
export const FEED_POSITION_HEADER = 'Chat-Feed-Position';
export const STREAM_VERSION_HEADER = 'Chat-Stream-Version';
export const EVENT_TYPE_HEADER = 'Chat-Event-Type';

export const eventMessage = z.object({
  event_id: z.string(),
  stream_id: z.string(),
  version: z.number().int().positive(),
  type: z.string(),
  data: z.record(z.string(), z.unknown()),
  metadata: z.record(z.string(), z.unknown()),
  created_at: z.iso.datetime(),
  position: z.string(),
});

export type EventMessage = z.infer<typeof eventMessage>;

export function toEventMessage(event: RecordedEvent): { body: Uint8Array; headers: MsgHdrs } {
  const message: EventMessage = {
    event_id: event.eventId,
    stream_id: event.streamId,
    version: event.version,
    type: event.type,
    data: event.data,
    metadata: event.metadata,
    created_at: new Date(event.createdAt).toISOString(),
    position: formatFeedPosition(event),
  };
  const h = headers();
  h.set(FEED_POSITION_HEADER, message.position);
  h.set(STREAM_VERSION_HEADER, String(event.version));
  h.set(EVENT_TYPE_HEADER, event.type);
  return { body: new TextEncoder().encode(JSON.stringify(message)), headers: h };
}

export function feedPositionOf(messageHeaders: MsgHdrs | undefined): FeedPosition | null {
  const text = messageHeaders?.get(FEED_POSITION_HEADER);
  return text ? parseFeedPosition(text) : null;
}
