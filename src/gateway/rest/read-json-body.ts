import type { Context } from 'hono';
import { GatewayError } from '../errors.js';

/** The request body parsed as JSON, whatever its Content-Type says. @throws GatewayError `invalid_json`. */
export async function readJsonBody(c: Context): Promise<unknown> {
  const text = await c.req.text();
  if (text.trim() === '') throw new GatewayError('invalid_json', 'request body must be a JSON object');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new GatewayError('invalid_json', 'request body is not valid JSON');
  }
}
