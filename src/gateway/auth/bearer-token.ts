import { GatewayError } from '../errors.js';

/**
 * The token of an `Authorization: Bearer <token>` header; undefined when there is no header.
 * @throws GatewayError `unauthorized` for another scheme or an empty token.
 */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer[ ]+([^ ]+)[ ]*$/i.exec(header);
  if (!match?.[1]) throw new GatewayError('unauthorized', 'Authorization header must be "Bearer <token>"');
  return match[1];
}
