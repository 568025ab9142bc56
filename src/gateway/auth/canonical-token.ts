/**
 * Revocation is keyed by the SHA-256 of the token's exact text, but a JWS decoder accepts several spellings
 * of the same bytes (trailing `=`, whitespace anywhere, other values of a segment's unused low bits). Only
 * one spelling may get in, or a logged-out token comes back re-spelled: three base64url segments, no
 * padding, no whitespace, each exactly the encoding of the bytes it decodes to.
 */

/** Far above any token Matcha issues; bounds the work done on input nobody signed. */
const MAX_TOKEN_LENGTH = 8_192;

const COMPACT = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

export function isCanonicalCompactToken(token: string): boolean {
  if (token.length > MAX_TOKEN_LENGTH || !COMPACT.test(token)) return false;
  // A round trip through the bytes rejects a segment of 4n+1 characters and non-zero unused bits.
  return token.split('.').every((segment) => Buffer.from(segment, 'base64url').toString('base64url') === segment);
}
