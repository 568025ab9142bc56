import type { NatsConnection, Subscription } from 'nats';
import { deliverySubject } from '../shared/nats.js';
import type { Logger } from '../shared/logger.js';
import { deliveredFrame, type DeliveredFrame } from './ws/delivered-frames.js';

export type DeliverySubscriptions = {
  /**
   * Counts one more socket of `userId`; the first one subscribes to the user's delivery subject. Resolves
   * once the NATS server has the subscription, so that anything published after that reaches us.
   */
  acquire(userId: number): Promise<void>;
  /** One socket fewer; the last one unsubscribes. */
  release(userId: number): void;
  /** Publishes an ephemeral frame (typing) straight to a user's sockets, on whichever gateways hold them. */
  publish(userId: number, frame: object): void;
  /** Users with a subscription, for tests and metrics. */
  readonly size: number;
  close(): void;
};

type Entry = { count: number; readonly subscription: Subscription; readonly ready: Promise<void> };

/**
 * One core-NATS subscription per user with at least one socket on this gateway, shared by the user's
 * sockets, so NATS routes a user's frames only to the gateways that hold that user.
 */
export function createDeliverySubscriptions(deps: {
  readonly nc: NatsConnection;
  readonly subjectPrefix: string;
  readonly logger: Logger;
  readonly onFrame: (userId: number, frame: DeliveredFrame, text: string) => void;
}): DeliverySubscriptions {
  const { nc, logger } = deps;
  const entries = new Map<number, Entry>();
  const decoder = new TextDecoder();

  function receive(userId: number, data: Uint8Array): void {
    const text = decoder.decode(data);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      logger.warn({ userId }, 'delivery payload is not JSON; dropped');
      return;
    }
    const parsed = deliveredFrame.safeParse(json);
    if (!parsed.success) {
      logger.warn({ userId, issues: parsed.error.issues.slice(0, 3) }, 'delivery payload is not a frame; dropped');
      return;
    }
    deps.onFrame(userId, parsed.data, text);
  }

  return {
    acquire(userId) {
      const existing = entries.get(userId);
      if (existing) {
        existing.count++;
        return existing.ready;
      }
      const subscription = nc.subscribe(deliverySubject(deps.subjectPrefix, userId), {
        callback: (error, message) => {
          if (error) logger.warn({ err: error, userId }, 'delivery subscription error');
          else receive(userId, message.data);
        },
      });
      // flush() is a round trip: once it returns, the server has processed our SUB.
      const ready = nc.flush();
      entries.set(userId, { count: 1, subscription, ready });
      return ready;
    },
    release(userId) {
      const entry = entries.get(userId);
      if (!entry) return;
      if (--entry.count > 0) return;
      entries.delete(userId);
      entry.subscription.unsubscribe();
    },
    publish(userId, frame) {
      nc.publish(deliverySubject(deps.subjectPrefix, userId), JSON.stringify(frame));
    },
    get size() {
      return entries.size;
    },
    close() {
      for (const entry of entries.values()) entry.subscription.unsubscribe();
      entries.clear();
    },
  };
}
