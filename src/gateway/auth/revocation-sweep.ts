import type { Redis } from 'ioredis';
import type { Logger } from '../../shared/logger.js';

/** What the sweep needs of an open socket. */
export type RevocableSocket = {
  /** The revocation key of the socket's current token; null while it is not authenticated. */
  readonly revocationKey: string | null;
  /** Closes the socket with 4401: its token was revoked. */
  revoke(): void;
};

export type RevocationSweep = {
  /** One pass now; resolves with how many sockets were closed. Used by the timer, and by tests. */
  sweep(): Promise<number>;
  stop(): void;
};

/** Keys asked per Redis round trip: one pipeline of EXISTS per chunk. */
const KEYS_PER_ROUND_TRIP = 1_000;

/**
 * Revocation reaches open sockets: Matcha's logout writes the token's revocation key, and every
 * `intervalMs` the keys of all open sockets are checked, `KEYS_PER_ROUND_TRIP` per Redis round trip (a
 * token shared by several sockets is asked once). A socket whose key exists is closed with 4401 within
 * `intervalMs` plus one pass. When Redis does not answer, nothing is closed (a failure to check is not a
 * revocation) and the next pass tries again.
 */
export function startRevocationSweep(deps: {
  readonly redis: Redis;
  readonly sockets: () => Iterable<RevocableSocket>;
  readonly intervalMs: number;
  readonly logger: Logger;
  readonly onPass?: (pass: { readonly keys: number; readonly roundTrips: number; readonly revoked: number }) => void;
}): RevocationSweep {
  let running: Promise<number> | null = null;

  async function pass(): Promise<number> {
    const byKey = new Map<string, RevocableSocket[]>();
    for (const socket of deps.sockets()) {
      const key = socket.revocationKey;
      if (key === null) continue;
      const sockets = byKey.get(key);
      if (sockets) sockets.push(socket);
      else byKey.set(key, [socket]);
    }
    const keys = [...byKey.keys()];
    let revoked = 0;
    let roundTrips = 0;
    for (let start = 0; start < keys.length; start += KEYS_PER_ROUND_TRIP) {
      const chunk = keys.slice(start, start + KEYS_PER_ROUND_TRIP);
      const pipeline = deps.redis.pipeline();
      for (const key of chunk) pipeline.exists(key);
      const results = await pipeline.exec();
      roundTrips++;
      for (const [index, key] of chunk.entries()) {
        const [error, exists] = results?.[index] ?? [new Error('no reply'), 0];
        if (error || exists !== 1) continue;
        for (const socket of byKey.get(key) ?? []) {
          // The token may have been refreshed since the keys were collected.
          if (socket.revocationKey !== key) continue;
          socket.revoke();
          revoked++;
        }
      }
    }
    deps.onPass?.({ keys: keys.length, roundTrips, revoked });
    if (revoked > 0) deps.logger.info({ revoked }, 'closed sockets whose token was revoked');
    return revoked;
  }

  const sweep = (): Promise<number> => {
    running ??= pass()
      .catch((error: unknown) => {
        deps.logger.warn({ err: error }, 'revocation sweep could not ask Redis; sockets stay open until the next pass');
        return 0;
      })
      .finally(() => {
        running = null;
      });
    return running;
  };

  const timer = setInterval(() => void sweep(), deps.intervalMs);
  timer.unref();
  return {
    sweep,
    stop: () => clearInterval(timer),
  };
}
