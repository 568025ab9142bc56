import type { NatsConnection, Subscription } from 'nats';
import { blockAfter } from '../../src/delivery/block-in-force.js';
import { eventFrameSchema, recordedEventFrame, type EventFrame } from '../../src/delivery/event-frames.js';
import type { RecordedEvent } from '../../src/event-store/recorded-event.js';
import { deliverySubject } from '../../src/shared/nats.js';

/**
 * Every frame published on each user's delivery subject, parsed at the boundary as a gateway would.
 * `nc` must be allowed to subscribe there (the operator).
 */
export function listenToDeliveries(
  nc: NatsConnection,
  prefix: string,
  userIds: readonly number[],
): { readonly received: Map<number, EventFrame[]>; readonly subscriptions: Subscription[] } {
  const received = new Map<number, EventFrame[]>();
  const subscriptions = userIds.map((userId) => {
    const frames: EventFrame[] = [];
    received.set(userId, frames);
    return nc.subscribe(deliverySubject(prefix, userId), {
      callback: (error, message) => {
        if (error) throw error;
        frames.push(eventFrameSchema.parse(message.json()));
      },
    });
  });
  return { received, subscriptions };
}

/** The frame `userId` gets of an event of a conversation that is not blocked. */
export function unblockedFrameFor(userId: number): (event: RecordedEvent) => EventFrame {
  return (event) => {
    const frame = recordedEventFrame(event, { userId, blockedBy: null });
    if (!frame) throw new Error(`no frame of ${event.streamId}@${event.version} for user ${userId}`);
    return frame;
  };
}

/**
 * The frames a user must get of the events of the user's conversations, in feed order, each framed with the
 * block in force at it (nothing of a conversation blocked against the user). A block frame's Conversation is
 * the one the fan-out builds when the read tables have no row: for tests that run no projector.
 */
export function expectedFrames(
  log: readonly RecordedEvent[],
  conversations: ReadonlyMap<string, readonly number[]>,
  userId: number,
): EventFrame[] {
  const blocks = new Map<string, number | null>();
  const frames: EventFrame[] = [];
  for (const event of log) {
    if (!conversations.get(event.streamId)?.includes(userId)) continue;
    const blockedBy = blockAfter(blocks.get(event.streamId) ?? null, event);
    blocks.set(event.streamId, blockedBy);
    const frame = recordedEventFrame(event, { userId, blockedBy, conversation: null });
    if (frame) frames.push(frame);
  }
  return frames;
}
