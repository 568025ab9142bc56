import type { Msg, NatsConnection, NatsError, Subscription } from 'nats';
import { eventFrameSchema } from '../delivery/event-frames.js';
import { flatString } from '../shared/flat-string.js';
import { parseUserSubject, signalSubject, userSubjects } from '../shared/nats.js';
import type { Logger } from '../shared/logger.js';
import { startedAfter } from './started-after.js';
import { signalFrame, type DeliveredFrame, type FastPathCopy, type SignalFrame } from './ws/delivered-frames.js';

export type DeliverySubscriptions = {
  /**
   * Counts one more socket of `userId`; the first one subscribes to the user's subjects (delivery and signal).
   * Resolves once the NATS server has the subscription, so that anything published after that reaches us.
   */
  acquire(userId: number): Promise<void>;
  /** One socket fewer; the last one unsubscribes. */
  release(userId: number): void;
  /**
   * Publishes an ephemeral frame (typing, presence) or a fast-path copy of a `new_message` straight to a user's
   * sockets, on whichever gateways hold them, on the user's signal subject: gateways may not publish on delivery
   * subjects (only the fan-out may). @returns the frame's text, as published.
   */
  publish(userId: number, frame: SignalFrame): string;
  /** Users with a subscription, for tests and metrics. */
  readonly size: number;
  close(): void;
};

/**
 * A user's subscription while it is shared by several sockets or its flush has not succeeded yet. Otherwise
 * (one socket, subscription in place: most users) the map holds the `Subscription` itself, without this object.
 */
class Entry {
  constructor(
    public count: number,
    readonly subscription: Subscription,
    /** The flush that made the subscription; null once it resolved (kept only while in flight or failed). */
    public ready: Promise<void> | null,
  ) {}
}

/**
 * One core-NATS subscription per user with at least one socket on this gateway, shared by the user's
 * sockets, so NATS routes a user's frames only to the gateways that hold that user: `userSubjects`, which
 * covers the delivery subject (event frames, from the fan-out) and the signal subject (typing, presence and
 * fast-path copies of new messages, from gateways). Each subject accepts only its own kinds of frame, told
 * by the subject a message came on: a frame on the signal subject never reaches a socket as an ordered event
 * frame (a fast-path copy goes to `onFastPath`, which sends it only when it is next on its socket;
 * docs/delivery.md, "The fast path"). One subscription, not two, because each costs about 1.2 KiB of heap
 * in nats.js, per user held (docs/benchmarks.md).
 */
export function createDeliverySubscriptions(deps: {
  readonly nc: NatsConnection;
  readonly subjectPrefix: string;
  readonly logger: Logger;
  readonly onFrame: (userId: number, frame: DeliveredFrame, text: string) => void;
  /** A fast-path copy of a `new_message`, from the signal subject. */
  readonly onFastPath: (userId: number, copy: FastPathCopy) => void;
}): DeliverySubscriptions {
  const { nc, logger } = deps;
  const entries = new Map<number, Entry | Subscription>();
  /** Back to the bare subscription once one socket holds it and it is in place. */
  const settle = (userId: number, entry: Entry): void => {
    if (entry.count === 1 && entry.ready === null && entries.get(userId) === entry) entries.set(userId, entry.subscription);
  };
  const decoder = new TextDecoder();
  // One flush covers every SUB written before it: users subscribing together share one round trip (a flush
  // started after their SUB), not a PING each.
  const flush = startedAfter(() => nc.flush());

  /** Every user's subscription calls this one function (no closure per user): the subject names the user. */
  function receive(error: NatsError | null, message: Msg): void {
    if (error) {
      logger.warn({ err: error }, 'delivery subscription error');
      return;
    }
    const to = parseUserSubject(message.subject);
    if (!to) {
      logger.warn({ subject: message.subject }, 'message on an unknown user subject; dropped');
      return;
    }
    const { userId, kind } = to;
    const text = decoder.decode(message.data);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      logger.warn({ userId, subject: kind }, 'delivery payload is not JSON; dropped');
      return;
    }
    const parsed = kind === 'delivery' ? eventFrameSchema.safeParse(json) : signalFrame.safeParse(json);
    if (!parsed.success) {
      logger.warn({ userId, subject: kind, issues: parsed.error.issues.slice(0, 3) }, `payload on the ${kind} subject is not its kind of frame; dropped`);
      return;
    }
    const frame = parsed.data;
    if (kind === 'signal' && 'previous' in frame) deps.onFastPath(userId, frame);
    else deps.onFrame(userId, frame, text);
  }

  return {
    acquire(userId) {
      const existing = entries.get(userId);
      if (existing instanceof Entry) {
        existing.count++;
        return existing.ready ?? Promise.resolve();
      }
      if (existing) {
        entries.set(userId, new Entry(2, existing, null));
        return Promise.resolve();
      }
      // Flat: nats.js keeps the subject for as long as the subscription lives.
      const subscription = nc.subscribe(flatString(userSubjects(deps.subjectPrefix, userId)), { callback: receive });
      // A round trip started after the SUB: once it returns, the server has processed our SUB.
      const ready = flush();
      const entry = new Entry(1, subscription, ready);
      entries.set(userId, entry);
      ready.then(
        () => {
          if (entry.ready !== ready) return;
          entry.ready = null;
          settle(userId, entry);
        },
        () => undefined, // kept: the next socket of the user gets the same failure
      );
      return ready;
    },
    release(userId) {
      const entry = entries.get(userId);
      if (!entry) return;
      if (entry instanceof Entry && --entry.count > 0) return settle(userId, entry);
      entries.delete(userId);
      (entry instanceof Entry ? entry.subscription : entry).unsubscribe();
    },
    publish(userId, frame) {
      const text = JSON.stringify(frame);
      nc.publish(signalSubject(deps.subjectPrefix, userId), text);
      return text;
    },
    get size() {
      return entries.size;
    },
    close() {
      for (const entry of entries.values()) (entry instanceof Entry ? entry.subscription : entry).unsubscribe();
      entries.clear();
    },
  };
}
