import type { MiddlewareHandler } from 'hono';
import { bearerToken } from '../auth/bearer-token.js';
import type { VerifyToken } from '../auth/verify-token.js';
import { GatewayError } from '../errors.js';
import type { RequestTrace } from '../../event-store/event-metadata.js';
import type { Logger } from '../../shared/logger.js';

/** What every request carries from the first middleware on: its trace and a logger that logs it. */
export type TracedEnv = { Variables: { trace: RequestTrace; logger: Logger } };

export type AuthenticatedEnv = { Variables: TracedEnv['Variables'] & { userId: number } };

/** Every `/api/v1/chat/*` route: a valid bearer token, and an `X-User-ID` equal to its subject if present. */
export function authenticate(verifyToken: VerifyToken): MiddlewareHandler<AuthenticatedEnv> {
  return async (c, next) => {
    const token = bearerToken(c.req.header('authorization'));
    if (token === undefined) throw new GatewayError('unauthorized', 'missing Authorization: Bearer <token> header');
    const user = await verifyToken(token, { claimedUserId: c.req.header('x-user-id') });
    c.set('userId', user.userId);
    await next();
  };
}
