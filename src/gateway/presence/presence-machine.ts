/**
 * One user's presence across every gateway, as a pure machine: its state, what the service saw (a socket
 * opened or closed, or the time to look again came), and what follows. The store (presence-store.ts) keeps
 * the state in Redis and writes a decision only if neither the state nor the liveness of the user's socket
 * leases changed since they were read, so that each transition is decided, and announced, exactly once.
 *
 * - `online`: at least one socket of the user holds a live lease (socket-leases.ts).
 * - `leaving`: the last socket closed at `since`; still online to everyone until `since + graceMs`, so that a
 *   reconnect inside the grace changes nothing anyone can see.
 * - `offline`: `lastSeenAt` is when the last socket closed (null: never seen).
 *
 * A gateway that dies releases nothing: its sockets' leases lapse `leaseTtlMs` after their last renewal.
 * An online user is looked at again when its latest lease would lapse; found with no live lease then, the
 * user is offline at once (the lease's lifetime was the grace), last seen at that lease's last renewal.
 */

export type PresenceState =
  | { readonly name: 'offline'; readonly lastSeenAt: number | null }
  | { readonly name: 'online' }
  | { readonly name: 'leaving'; readonly since: number };

export const NEVER_SEEN: PresenceState = { name: 'offline', lastSeenAt: null };

/** What the service saw, with the user's socket leases at that moment (times in ms since the epoch). */
export type Observation = {
  readonly cause: 'socket_opened' | 'socket_closed' | 'due';
  readonly now: number;
  /** Leases of the user's sockets, on any gateway, that have not lapsed. */
  readonly liveSockets: number;
  /** The latest expiry among them; null without a live lease. */
  readonly leasesExpireAt: number | null;
  /** For `due`: when the look was scheduled. */
  readonly dueAt?: number;
};

export type Announcement = { readonly userId: number; readonly online: boolean; readonly lastSeenAt: number | null };

/** A change to write: the next state, when to look at the user again (null: never), what to tell partners. */
export type PresenceDecision = {
  readonly next: PresenceState;
  readonly checkAt: number | null;
  readonly announce: { readonly online: boolean; readonly lastSeenAt: number | null } | null;
};

export type PresenceTimings = { readonly graceMs: number; readonly leaseTtlMs: number };

/** @returns the change the observation makes, or null when it changes nothing. */
export function decidePresence(state: PresenceState, seen: Observation, timings: PresenceTimings): PresenceDecision | null {
  if (seen.liveSockets > 0) {
    const checkAt = seen.leasesExpireAt ?? seen.now + timings.leaseTtlMs;
    switch (state.name) {
      case 'offline':
        return { next: { name: 'online' }, checkAt, announce: { online: true, lastSeenAt: seen.now } };
      case 'leaving':
        return { next: { name: 'online' }, checkAt, announce: null };
      case 'online':
        return seen.cause === 'due' ? { next: state, checkAt, announce: null } : null;
      default:
        return unreachable(state);
    }
  }
  switch (state.name) {
    case 'offline':
      return seen.cause === 'due' ? { next: state, checkAt: null, announce: null } : null;
    case 'online':
      if (seen.cause === 'socket_closed') return { next: { name: 'leaving', since: seen.now }, checkAt: seen.now + timings.graceMs, announce: null };
      if (seen.cause === 'due') {
        const lastSeenAt = Math.min(seen.now, (seen.dueAt ?? seen.now) - timings.leaseTtlMs);
        return { next: { name: 'offline', lastSeenAt }, checkAt: null, announce: { online: false, lastSeenAt } };
      }
      // Opened and closed again before this look: the close's own look decides.
      return null;
    case 'leaving': {
      if (seen.cause !== 'due') return null;
      const offlineAt = state.since + timings.graceMs;
      if (seen.now < offlineAt) return { next: state, checkAt: offlineAt, announce: null };
      return { next: { name: 'offline', lastSeenAt: state.since }, checkAt: null, announce: { online: false, lastSeenAt: state.since } };
    }
    default:
      return unreachable(state);
  }
}

/** Whether others see the user online: `leaving` is online until the grace ends. */
export const isOnline = (state: PresenceState): boolean => state.name !== 'offline';

function unreachable(state: never): never {
  throw new Error(`unknown presence state ${JSON.stringify(state)}`);
}
