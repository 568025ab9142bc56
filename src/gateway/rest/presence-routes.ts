import { Hono } from 'hono';
import { z } from 'zod';
import type { PresenceView } from '../presence/presence.js';
import type { RateLimiter } from '../rate-limit.js';
import type { AuthenticatedEnv } from './authenticate.js';
import { ok } from './envelope.js';
import { parseInput } from './request-schemas.js';

export type PresenceRouteDeps = {
  readonly viewFor: (callerId: number, userIds: readonly number[]) => Promise<PresenceView[]>;
  /** Each call reads the caller's partners from Postgres and up to 100 hashes from Redis. */
  readonly limiter: Pick<RateLimiter, 'consume'>;
};

/** At most this many ids per call. */
export const MAX_PRESENCE_IDS = 100;

const userIdList = z
  .string()
  .regex(/^[1-9][0-9]{0,15}(,[1-9][0-9]{0,15})*$/, 'must be a comma-separated list of positive integer user ids')
  .transform((text) => text.split(',').map(Number))
  .pipe(
    z
      .array(z.number().max(Number.MAX_SAFE_INTEGER, 'an id is out of range'))
      .max(MAX_PRESENCE_IDS, `at most ${MAX_PRESENCE_IDS} ids`),
  );

const presenceQuery = z.object({ user_ids: userIdList });

/** `GET /presence?user_ids=1,2,3`: the presence of those ids who share a conversation (not blocked) with the caller. */
export function presenceRoutes(deps: PresenceRouteDeps): Hono<AuthenticatedEnv> {
  const routes = new Hono<AuthenticatedEnv>();
  routes.get('/presence', async (c) => {
    const { user_ids: userIds } = parseInput(presenceQuery, c.req.query());
    await deps.limiter.consume(c.var.userId);
    return ok(c, await deps.viewFor(c.var.userId, userIds));
  });
  return routes;
}
