import { Hono } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { cors } from 'hono/cors';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import type { Logger } from '../../shared/logger.js';
import type { VerifyToken } from '../auth/verify-token.js';
import type { ChatOperations } from '../chat-operations.js';
import { describeError, errorEnvelope, GatewayError } from '../errors.js';
import { traceMetadata } from '../../event-store/event-metadata.js';
import { REQUEST_ID_HEADER, requestTrace, TRACEPARENT_HEADER } from '../request-context.js';
import { authenticate, type AuthenticatedEnv, type TracedEnv } from './authenticate.js';
import { chatRoutes } from './chat-routes.js';
import { presenceRoutes, type PresenceRouteDeps } from './presence-routes.js';

export const API_PREFIX = '/api/v1/chat';

/** The REST side of the gateway: `GET /health` without auth, everything else under `/api/v1/chat` with it. */
export function createRestApp(deps: {
  readonly operations: ChatOperations;
  readonly presence: PresenceRouteDeps;
  readonly verifyToken: VerifyToken;
  readonly logger: Logger;
  /** Request ids for requests that come without a usable one. */
  readonly newId: () => string;
  /** Called with the status of every answer (metrics). */
  readonly onResponse?: (status: number) => void;
  readonly bodyLimitBytes: number;
  readonly allowedOrigins: readonly string[];
  readonly startedAt: Date;
  /** Pages outside the API, each under its own path (the development demo at `/demo`). */
  readonly pages?: ReadonlyMap<string, Hono<TracedEnv>>;
}): Hono<TracedEnv> {
  const app = new Hono<TracedEnv>();

  // Every request's id and traceparent (request-context.ts): echoed, and on each of its log lines.
  app.use(async (c, next) => {
    const started = performance.now();
    const trace = requestTrace({ requestId: c.req.header(REQUEST_ID_HEADER), traceparent: c.req.header(TRACEPARENT_HEADER) }, deps.newId);
    const logger = deps.logger.child(traceMetadata(trace));
    c.set('trace', trace);
    c.set('logger', logger);
    await next();
    c.header(REQUEST_ID_HEADER, trace.requestId);
    deps.onResponse?.(c.res.status);
    // The path only: a query string may carry a token (a misdirected `?token=`), and tokens are never logged.
    logger.debug({ method: c.req.method, path: c.req.path, status: c.res.status, ms: Math.round(performance.now() - started) }, 'request');
  });

  app.use(
    cors({
      origin: deps.allowedOrigins.length > 0 ? [...deps.allowedOrigins] : '*',
      allowMethods: ['GET', 'POST', 'PUT', 'OPTIONS'],
      allowHeaders: ['Authorization', 'Content-Type', 'X-User-ID', REQUEST_ID_HEADER, TRACEPARENT_HEADER],
      exposeHeaders: ['Retry-After', REQUEST_ID_HEADER],
      maxAge: 600,
    }),
  );

  app.use(
    bodyLimit({
      maxSize: deps.bodyLimitBytes,
      onError: () => {
        throw new GatewayError('payload_too_large', `request body is larger than ${deps.bodyLimitBytes} bytes`);
      },
    }),
  );

  app.get('/health', (c) =>
    c.json({ status: 'ok', service: 'chat-gateway', uptime_s: Math.round((Date.now() - deps.startedAt.getTime()) / 1000) }),
  );

  const api = new Hono<AuthenticatedEnv>();
  api.use(authenticate(deps.verifyToken));
  api.route('/', chatRoutes(deps.operations));
  api.route('/', presenceRoutes(deps.presence));
  app.route(API_PREFIX, api);
  for (const [path, pages] of deps.pages ?? []) {
    app.get(`${path}/`, (c) => c.redirect(path));
    app.route(path, pages);
  }

  app.notFound((c) => c.json(errorEnvelope({ message: `no route ${c.req.method} ${c.req.path}`, restCode: 'not_found' }), 404));

  app.onError((error, c) => {
    const answer = describeError(error);
    if (answer.report) (c.var.logger ?? deps.logger).error({ err: error, method: c.req.method, path: c.req.path }, 'request failed');
    if (answer.retryAfterSeconds !== undefined) c.header('Retry-After', String(answer.retryAfterSeconds));
    return c.json(errorEnvelope(answer), answer.status as ContentfulStatusCode);
  });

  return app;
}
