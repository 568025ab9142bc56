import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import type { ChatOperations } from '../../src/gateway/chat-operations.js';
import { createRestApp } from '../../src/gateway/rest/rest-app.js';
import { documentedRoutes } from '../support/contract/rest-contract.js';

/** docs/openapi.yaml lists exactly the routes the gateway's hono app serves: none missing, none extra. */

const refuse = (): never => {
  throw new Error('not called: the test only lists routes');
};

function servedRoutes(): string[] {
  const app = createRestApp({
    operations: new Proxy({}, { get: refuse }) as ChatOperations,
    presence: { viewFor: refuse, limiter: { consume: refuse } },
    verifyToken: refuse,
    logger: pino({ level: 'silent' }),
    newId: () => 'id',
    bodyLimitBytes: 1_024,
    allowedOrigins: [],
    startedAt: new Date(),
  });
  const routes = app.routes
    // Middleware (cors, body limit, auth) is registered for every method; only handlers are routes.
    .filter((route) => route.method !== 'ALL')
    .map((route) => `${route.method} ${route.path.replace(/:([A-Za-z_]+)/g, '{$1}')}`);
  return [...new Set(routes)].sort();
}

describe('documented routes', () => {
  it('are the routes the app serves', () => {
    const served = servedRoutes();
    expect(served.length).toBeGreaterThan(10);
    expect(documentedRoutes().sort()).toEqual(served);
  });
});
