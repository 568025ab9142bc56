import type { NewMessageFrame } from '../../delivery/event-frames.js';
import type { DeliverySubscriptions } from '../delivery-subscriptions.js';
import type { DeliveredFrame } from './delivered-frames.js';

/** What a socket's replay after a NATS outage did. */
export type Recovery = { readonly replayed: number; readonly resyncRequired: boolean };

/** What the registry needs of a socket. */
export type RegisteredSocket = {
  deliver(frame: DeliveredFrame, text: string): void;
  /**
   * A fast-path copy of a new message: written only as the next seq of its conversation (delivery-gate.ts).
   * @returns whether it was written.
   */
  deliverEarly(frame: NewMessageFrame): boolean;
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
  deliverEarly(userId: number, frame: NewMessageFrame): number;
  /** NATS disconnected: suspends every socket, and every socket added until `resumeAll`. */
  suspendAll(): void;
  /** NATS is back with our subscriptions: sockets added from now on are not suspended. @returns every socket, to recover. */
  resumeAll(): RegisteredSocket[];
  readonly size: number;
};

/** The sockets of this gateway, by user; several per user (tabs, devices), up to `maxSocketsPerUser`. */
export function createSocketRegistry(deps: {
  readonly maxSocketsPerUser: number;
  readonly subscriptions: Pick<DeliverySubscriptions, 'acquire' | 'release'>;
}): SocketRegistry {
  const byUser = new Map<number, Set<RegisteredSocket>>();
  let size = 0;
  let suspended = false;
  const registry: SocketRegistry = {
    async add(userId, socket) {
      let sockets = byUser.get(userId);
      if (sockets?.has(socket)) return 'added';
      if ((sockets?.size ?? 0) >= deps.maxSocketsPerUser) return 'too_many';
      if (!sockets) byUser.set(userId, (sockets = new Set()));
      sockets.add(socket);
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
      const sockets = byUser.get(userId);
      if (!sockets?.delete(socket)) return;
      size--;
      if (sockets.size === 0) byUser.delete(userId);
      deps.subscriptions.release(userId);
    },
    countOf: (userId) => byUser.get(userId)?.size ?? 0,
    deliver(userId, frame, text) {
      for (const socket of byUser.get(userId) ?? []) socket.deliver(frame, text);
    },
    deliverEarly(userId, frame) {
      let written = 0;
      for (const socket of byUser.get(userId) ?? []) if (socket.deliverEarly(frame)) written++;
      return written;
    },
    suspendAll() {
      suspended = true;
      for (const sockets of byUser.values()) for (const socket of sockets) socket.suspend();
    },
    resumeAll() {
      suspended = false;
      return [...byUser.values()].flatMap((sockets) => [...sockets]);
    },
    get size() {
      return size;
    },
  };
  return registry;
}
