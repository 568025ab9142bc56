import type { NewMessageFrame } from '../../delivery/event-frames.js';
import type { FeedPosition } from '../../event-store/recorded-event.js';
import type { DeliverySubscriptions } from '../delivery-subscriptions.js';
import type { DeliveredFrame } from './delivered-frames.js';

/** What a socket's replay after a NATS outage did. */
export type Recovery = { readonly replayed: number; readonly resyncRequired: boolean };

/** What the registry needs of a socket. */
export type RegisteredSocket = {
  deliver(frame: DeliveredFrame, text: string): void;
  /**
   * A fast-path copy of a new message, with where its conversation's event before it is: written only when
   * it is next on the socket (delivery-gate.ts).
   * @returns whether it was written.
   */
  deliverEarly(frame: NewMessageFrame, previous: FeedPosition | null): boolean;
  /** The delivery subscription may be missing frames (NATS disconnected): hold live frames from now on. */
  suspend(): void;
  /**
   * Once NATS is back and the server has the subscriptions again: replays from the log what the socket may
   * have missed since `suspend`, then releases the held frames. One catch-up; nothing when not suspended.
   * Never rejects.
   */
  recover(): Promise<Recovery>;
};

export type SocketRegistry = {
  /**
   * Registers an authenticated socket and makes sure its user's delivery subscription is in place.
   * @returns `too_many` (and registers nothing) when the user already holds the maximum.
   */
  add(userId: number, socket: RegisteredSocket): Promise<'added' | 'too_many'>;
  remove(userId: number, socket: RegisteredSocket): void;
  countOf(userId: number): number;
  /** Writes a frame from the user's delivery subject to each of the user's sockets here. */
  deliver(userId: number, frame: DeliveredFrame, text: string): void;
  /** Offers a fast-path copy of a new message to each of the user's sockets here. @returns how many wrote it. */
  deliverEarly(userId: number, frame: NewMessageFrame, previous: FeedPosition | null): number;
  /** NATS disconnected: suspends every socket, and every socket added until `resumeAll`. */
  suspendAll(): void;
  /** NATS is back with our subscriptions: sockets added from now on are not suspended. @returns every socket, to recover. */
  resumeAll(): RegisteredSocket[];
  readonly size: number;
};

/**
 * The sockets of this gateway, by user; several per user (tabs, devices), up to `maxSocketsPerUser`. Most
 * users have one socket here: it is the map's value itself, and a Set only once there are more.
 */
export function createSocketRegistry(deps: {
  readonly maxSocketsPerUser: number;
  readonly subscriptions: Pick<DeliverySubscriptions, 'acquire' | 'release'>;
}): SocketRegistry {
  const byUser = new Map<number, RegisteredSocket | Set<RegisteredSocket>>();
  let size = 0;
  let suspended = false;
  const countIn = (entry: RegisteredSocket | Set<RegisteredSocket> | undefined): number =>
    entry === undefined ? 0 : entry instanceof Set ? entry.size : 1;
  const has = (entry: RegisteredSocket | Set<RegisteredSocket> | undefined, socket: RegisteredSocket): boolean =>
    entry instanceof Set ? entry.has(socket) : entry === socket;
  const each = (entry: RegisteredSocket | Set<RegisteredSocket> | undefined): Iterable<RegisteredSocket> =>
    entry === undefined ? [] : entry instanceof Set ? entry : [entry];

  const registry: SocketRegistry = {
    async add(userId, socket) {
      const entry = byUser.get(userId);
      if (has(entry, socket)) return 'added';
      if (countIn(entry) >= deps.maxSocketsPerUser) return 'too_many';
      if (entry === undefined) byUser.set(userId, socket);
      else if (entry instanceof Set) entry.add(socket);
      else byUser.set(userId, new Set([entry, socket]));
      size++;
      // Added during an outage: its subscription (new or shared) may be missing frames as well.
      if (suspended) socket.suspend();
      try {
        await deps.subscriptions.acquire(userId);
      } catch (error) {
        // Not registered after all: the caller closes the socket, and the count stays right.
        registry.remove(userId, socket);
        throw error;
      }
      return 'added';
    },
    remove(userId, socket) {
      const entry = byUser.get(userId);
      if (entry instanceof Set) {
        if (!entry.delete(socket)) return;
        // Back to one socket: the map holds it again rather than a Set of one.
        if (entry.size === 1) byUser.set(userId, entry.values().next().value!);
      } else {
        if (entry !== socket) return;
        byUser.delete(userId);
      }
      size--;
      deps.subscriptions.release(userId);
    },
    countOf: (userId) => countIn(byUser.get(userId)),
    deliver(userId, frame, text) {
      // The live path: no array made for the usual single socket.
      const entry = byUser.get(userId);
      if (entry instanceof Set) for (const socket of entry) socket.deliver(frame, text);
      else entry?.deliver(frame, text);
    },
    deliverEarly(userId, frame, previous) {
      let written = 0;
      for (const socket of each(byUser.get(userId))) if (socket.deliverEarly(frame, previous)) written++;
      return written;
    },
    suspendAll() {
      suspended = true;
      for (const entry of byUser.values()) for (const socket of each(entry)) socket.suspend();
    },
    resumeAll() {
      suspended = false;
      return [...byUser.values()].flatMap((entry) => [...each(entry)]);
    },
    get size() {
      return size;
    },
  };
  return registry;
}
