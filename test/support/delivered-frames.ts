import type { NatsConnection, Subscription } from 'nats';
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

/** The frames a user must get: those of the events of the user's conversations (none blocked), in feed order. */
export function expectedFrames(
  log: readonly RecordedEvent[],
  conversations: ReadonlyMap<string, readonly number[]>,
  userId: number,
): EventFrame[] {
  return log.filter((event) => conversations.get(event.streamId)?.includes(userId)).map(unblockedFrameFor(userId));
}
