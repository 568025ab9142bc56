import type { Context } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';

/** The seed's success envelope. Failures go through `errors.ts`. */
export function ok<T>(c: Context, data: T, status: ContentfulStatusCode = 200): Response {
  return c.json({ success: true as const, data }, status);
}
