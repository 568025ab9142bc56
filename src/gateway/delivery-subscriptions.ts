import type { NatsConnection, Subscription } from 'nats';
import type { z } from 'zod';
import { eventFrameSchema, type NewMessageFrame } from '../delivery/event-frames.js';
import { deliverySubject, signalSubject } from '../shared/nats.js';
import type { Logger } from '../shared/logger.js';
import { signalFrame, type DeliveredFrame, type SignalFrame } from './ws/delivered-frames.js';

export type DeliverySubscriptions = {
  /**
   * Counts one more socket of `userId`; the first one subscribes to the user's delivery and signal subjects.
   * Resolves once the NATS server has the subscriptions, so that anything published after that reaches us.
   */
  acquire(userId: number): Promise<void>;
  /** One socket fewer; the last one unsubscribes. */
  release(userId: number): void;
  /**
   * Publishes an ephemeral frame (typing, presence) or a fast-path copy of a `new_message` straight to a user's
   * sockets, on whichever gateways hold them, on the user's signal subject: gateways may not publish on delivery
   * subjects (only the fan-out may).
   */
  publish(userId: number, frame: SignalFrame): void;
  /** Users with a subscription, for tests and metrics. */
  readonly size: number;
  close(): void;
};

type Entry = { count: number; readonly subscriptions: readonly Subscription[]; readonly ready: Promise<void> };

/**
 * Two core-NATS subscriptions per user with at least one socket on this gateway, shared by the user's
 * sockets, so NATS routes a user's frames only to the gateways that hold that user: the delivery subject
 * (event frames, from the fan-out) and the signal subject (typing, presence and fast-path copies of new
 * messages, from gateways). Each subject accepts only its own kinds of frame: a frame on the signal subject
 * never reaches a socket as an ordered event frame (a fast-path copy goes to `onFastPath`, which sends it only
 * as the next seq of its conversation; docs/delivery.md, "The fast path").
 */
export function createDeliverySubscriptions(deps: {
  readonly nc: NatsConnection;
  readonly subjectPrefix: string;
  readonly logger: Logger;
  readonly onFrame: (userId: number, frame: DeliveredFrame, text: string) => void;
  /** A fast-path copy of a `new_message`, from the signal subject. */
  readonly onFastPath: (userId: number, frame: NewMessageFrame) => void;
}): DeliverySubscriptions {
  const { nc, logger } = deps;
  const entries = new Map<number, Entry>();
  const decoder = new TextDecoder();

  function receive(userId: number, data: Uint8Array, schema: z.ZodType<DeliveredFrame>, kind: string): void {
    const text = decoder.decode(data);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      logger.warn({ userId, subject: kind }, 'delivery payload is not JSON; dropped');
      return;
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      logger.warn({ userId, subject: kind, issues: parsed.error.issues.slice(0, 3) }, `payload on the ${kind} subject is not its kind of frame; dropped`);
      return;
    }
    if (kind === 'signal' && parsed.data.type === 'new_message') deps.onFastPath(userId, parsed.data);
    else deps.onFrame(userId, parsed.data, text);
  }

  function subscribe(subject: string, userId: number, schema: z.ZodType<DeliveredFrame>, kind: string): Subscription {
    return nc.subscribe(subject, {
      callback: (error, message) => {
        if (error) logger.warn({ err: error, userId, subject: kind }, 'delivery subscription error');
        else receive(userId, message.data, schema, kind);
      },
    });
  }

  return {
    acquire(userId) {
      const existing = entries.get(userId);
      if (existing) {
        existing.count++;
        return existing.ready;
      }
      const subscriptions = [
        subscribe(deliverySubject(deps.subjectPrefix, userId), userId, eventFrameSchema, 'delivery'),
        subscribe(signalSubject(deps.subjectPrefix, userId), userId, signalFrame, 'signal'),
      ];
      // flush() is a round trip: once it returns, the server has processed our SUBs.
      const ready = nc.flush();
      entries.set(userId, { count: 1, subscriptions, ready });
      return ready;
    },
    release(userId) {
      const entry = entries.get(userId);
      if (!entry) return;
      if (--entry.count > 0) return;
      entries.delete(userId);
      for (const subscription of entry.subscriptions) subscription.unsubscribe();
    },
    publish(userId, frame) {
      nc.publish(signalSubject(deps.subjectPrefix, userId), JSON.stringify(frame));
    },
    get size() {
      return entries.size;
    },
    close() {
      for (const entry of entries.values()) for (const subscription of entry.subscriptions) subscription.unsubscribe();
      entries.clear();
    },
  };
}
