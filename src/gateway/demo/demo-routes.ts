import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Hono } from 'hono';
import { z } from 'zod';
import { signDevelopmentToken } from '../auth/development-token.js';
import type { TracedEnv } from '../rest/authenticate.js';
import { ok } from '../rest/envelope.js';
import { readJsonBody } from '../rest/read-json-body.js';
import { parseInput, userId } from '../rest/request-schemas.js';
import type { DemoBundle } from './demo-bundle.js';

export const DEMO_PATH = '/demo';

/** How long a token minted for the page lives; the client asks for a new one on every reconnect. */
export const DEMO_TOKEN_SECONDS = 3_600;

/** The page, its script and its styles all come from the gateway's origin; the socket too. */
const CONTENT_SECURITY_POLICY =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const tokenRequest = z.object({ user_id: userId });

/**
 * The demo page under `/demo`, for development only (the composition root mounts it when NODE_ENV is
 * `development`): the page, its bundled script and styles, and `POST /demo/token {"user_id":42}`, which
 * mints a short-lived token with the gateway's JWT_SECRET so that the page can act as any user.
 */
export function demoRoutes(deps: { readonly root: string; readonly jwtSecret: string; readonly bundle: DemoBundle }): Hono<TracedEnv> {
  const routes = new Hono<TracedEnv>();
  const demoFile = (name: string) => readFile(path.join(deps.root, 'demo', name), 'utf8');

  routes.get('/', async (c) => {
    c.header('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    c.header('Cache-Control', 'no-store');
    return c.html(await demoFile('index.html'));
  });
  routes.get('/demo.css', async (c) => c.body(await demoFile('demo.css'), 200, { 'Content-Type': 'text/css; charset=utf-8', 'Cache-Control': 'no-store' }));
  routes.get('/demo.js', async (c) =>
    c.body(await deps.bundle(), 200, { 'Content-Type': 'text/javascript; charset=utf-8', 'Cache-Control': 'no-store' }),
  );

  routes.post('/token', async (c) => {
    const body = parseInput(tokenRequest, await readJsonBody(c));
    const token = await signDevelopmentToken({ userId: body.user_id, secret: deps.jwtSecret, expiresInSeconds: DEMO_TOKEN_SECONDS });
    const expiresAt = new Date(Date.now() + DEMO_TOKEN_SECONDS * 1000).toISOString();
    return ok(c, { user_id: body.user_id, token, expires_at: expiresAt });
  });

  return routes;
}
