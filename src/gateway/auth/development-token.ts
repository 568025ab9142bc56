import { SignJWT } from 'jose';

/**
 * An HS256 token for `userId` as Matcha's auth service would issue it (`sub` the id as a string of digits),
 * for development only: `npm run token` and the demo page's `POST /demo/token` mint theirs here.
 */
export function signDevelopmentToken(options: { readonly userId: number | string; readonly secret: string; readonly expiresInSeconds: number }): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({})
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(String(options.userId))
    .setIssuedAt(now)
    .setExpirationTime(now + options.expiresInSeconds)
    .sign(new TextEncoder().encode(options.secret));
}
