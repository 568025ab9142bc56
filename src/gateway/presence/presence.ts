import type { CommonQueryMethods } from 'slonik';
import { unblockedPartnersOf, unblockedPartnersOfEach } from '../../commands/conversation/blocks.js';
import { createBatcher } from '../../shared/batcher.js';
import type { Logger } from '../../shared/logger.js';
import { redisUnavailable } from '../redis-unavailable.js';
import type { SocketLease, SocketLeases } from '../socket-leases.js';
import type { EphemeralFrame } from '../ws/delivered-frames.js';
import { serverFrames } from '../ws/server-frames.js';
import { decidePresence, isOnline, type Observation, type PresenceTimings } from './presence-machine.js';
import type { PresenceFacts, PresenceStore, PresenceWrite } from './presence-store.js';

/** One user's presence as a partner sees it (GET /presence, the `presence` frame's data). */
export type PresenceView = { readonly user_id: number; readonly online: boolean; readonly last_seen_at: string | null };

export type Presence = {
  /** Socket leases that also tell presence when a socket opens and closes (the session is unchanged). */
  track(leases: SocketLeases): SocketLeases;
  /** One sweep: every user whose look is due. @returns the transitions announced. */
  sweep(): Promise<number>;
  /**
   * The presence of those of `userIds` who share a conversation with `callerId` that neither blocked; the
   * others are left out.
   * @throws GatewayError `unavailable` when Redis does not answer.
   */
  viewFor(callerId: number, userIds: readonly number[]): Promise<PresenceView[]>;
  /** Stops the sweeper and waits for the observations and announcements in flight. */
  close(): Promise<void>;
};

/** A decision that lost its compare-and-set is decided again on fresh facts, this many times at most. */
const ATTEMPTS = 5;
/** Users a sweep takes per Redis call; a full batch is followed by the next at once. */
const SWEEP_BATCH = 500;
/** How long a user taken by a sweep is left alone by the others (only matters if this gateway dies mid-sweep). */
const SWEEP_CLAIM_MS = 5_000;
/** Users whose partners one statement reads, for the announcements made together. */
const PARTNER_READ_BATCH = 500;

/**
 * Presence across gateways (presence-machine.ts for the rules, presence-store.ts for Redis). A socket's
 * lease taken or released is an observation of its user, decided and written at once; every gateway sweeps
 * the users whose look is due every `sweepIntervalMs` (the end of a grace, the expiry of a lease that a dead
 * gateway no longer renews). The gateway that writes a transition announces it: a `presence` frame on the
 * signal subject of every user who shares a conversation with that user that neither blocked.
 */
export function createPresence(deps: {
  readonly store: PresenceStore;
  readonly connection: CommonQueryMethods;
  /** Sends a frame to every socket of a user, on every gateway. */
  readonly publish: (userId: number, frame: EphemeralFrame) => void;
  readonly clock: () => Date;
  readonly logger: Logger;
  readonly timings: PresenceTimings;
  readonly sweepIntervalMs: number;
}): Presence {
  const { store, logger, clock } = deps;
  const inFlight = new Set<Promise<unknown>>();

  function keep<T>(promise: Promise<T>): Promise<T> {
    inFlight.add(promise);
    void promise.finally(() => inFlight.delete(promise)).catch(() => undefined);
    return promise;
  }

  // Announcements come in bursts (a sweep's batch of graces ending, sockets opening together after a restart):
  // their partner reads share statements, one at a time, rather than each taking a pool connection of its own
  // ahead of the sends'.
  const partnerReads = createBatcher<number, number[]>({
    run: async (userIds) => {
      const partners = await unblockedPartnersOfEach(deps.connection, userIds);
      return userIds.map((userId) => ({ status: 'fulfilled', value: partners.get(userId) ?? [] }));
    },
    maxBatchSize: PARTNER_READ_BATCH,
    maxConcurrentBatches: 1,
  });

  async function announce(userId: number, online: boolean, lastSeenAt: number | null): Promise<void> {
    const partners = await partnerReads.submit(userId);
    const frame = serverFrames.presence(clock(), userId, online, lastSeenAt === null ? null : new Date(lastSeenAt).toISOString());
    for (const partner of partners) deps.publish(partner, frame);
  }

  function announceWritten(writes: readonly PresenceWrite[], written: readonly boolean[]): number {
    let count = 0;
    writes.forEach(({ facts, decision }, index) => {
      if (!written[index] || !decision.announce) return;
      count++;
      const { online, lastSeenAt } = decision.announce;
      void keep(announce(facts.userId, online, lastSeenAt)).catch((error: unknown) => {
        logger.warn({ err: error, userId: facts.userId, online }, 'could not announce a presence change');
      });
    });
    return count;
  }

  const observationOf = (facts: PresenceFacts, cause: Observation['cause'], now: number): Observation => ({
    cause,
    now,
    liveSockets: facts.liveSockets,
    leasesExpireAt: facts.leasesExpireAt,
    ...(facts.dueAt !== undefined && { dueAt: facts.dueAt }),
  });

  /** A socket of `userId` opened or closed: decide on fresh facts until the write holds. */
  async function observe(userId: number, cause: 'socket_opened' | 'socket_closed'): Promise<void> {
    for (let attempt = 1; attempt <= ATTEMPTS; attempt++) {
      const now = clock().getTime();
      const facts = await store.read(userId, now);
      const decision = decidePresence(facts.state, observationOf(facts, cause, now), deps.timings);
      if (!decision) return;
      const writes = [{ facts, decision }];
      const written = await store.write(writes, now);
      if (written[0]) {
        announceWritten(writes, written);
        return;
      }
    }
    // Left to the sweeper: the user's look is due at the latest when its leases would lapse.
    logger.warn({ userId, cause }, 'presence kept changing under this observation; the sweep will settle it');
  }

  function observeQuietly(userId: number, cause: 'socket_opened' | 'socket_closed'): void {
    void keep(observe(userId, cause)).catch((error: unknown) => {
      logger.warn({ reason: error instanceof Error ? error.message : 'unknown error', userId, cause }, 'could not record a presence change; the sweep will settle it');
    });
  }

  async function sweep(): Promise<number> {
    let announced = 0;
    for (;;) {
      const now = clock().getTime();
      const due = await store.takeDue(now, SWEEP_BATCH, SWEEP_CLAIM_MS);
      const writes = due.flatMap((facts) => {
        const decision = decidePresence(facts.state, observationOf(facts, 'due', now), deps.timings);
        return decision ? [{ facts, decision }] : [];
      });
      // A lost compare-and-set means another gateway wrote this user meanwhile, with its own next look.
      announced += announceWritten(writes, await store.write(writes, now));
      if (due.length < SWEEP_BATCH) return announced;
    }
  }

  let sweeping: Promise<unknown> | null = null;
  const timer = setInterval(() => {
    if (sweeping || !store.connected()) return;
    sweeping = keep(sweep())
      .catch((error: unknown) => {
        logger.warn({ reason: error instanceof Error ? error.message : 'unknown error' }, 'presence sweep failed; retrying at the next tick');
      })
      .finally(() => {
        sweeping = null;
      });
  }, deps.sweepIntervalMs);
  timer.unref();

  return {
    track(leases) {
      return {
        async acquire(userId) {
          const taken = await leases.acquire(userId);
          if (taken !== 'too_many') observeQuietly(userId, 'socket_opened');
          return taken;
        },
        release(lease: SocketLease) {
          // Queued on the same Redis connection after the release, so the observation sees it.
          leases.release(lease);
          observeQuietly(lease.userId, 'socket_closed');
        },
        renew: (open) => leases.renew(open),
      };
    },
    sweep,
    async viewFor(callerId, userIds) {
      const wanted = [...new Set(userIds)];
      const partners = new Set(await unblockedPartnersOf(deps.connection, callerId));
      const visible = wanted.filter((userId) => partners.has(userId));
      let states;
      try {
        states = await store.states(visible);
      } catch (error) {
        throw redisUnavailable(logger, error, 'cannot read presence');
      }
      const now = clock().toISOString();
      return visible.map((userId) => {
        const state = states.get(userId)!;
        return {
          user_id: userId,
          online: isOnline(state),
          last_seen_at: state.name === 'offline' ? (state.lastSeenAt === null ? null : new Date(state.lastSeenAt).toISOString()) : now,
        };
      });
    },
    async close() {
      clearInterval(timer);
      while (inFlight.size > 0) await Promise.allSettled([...inFlight]);
    },
  };
}
