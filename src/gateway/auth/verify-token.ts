import { webcrypto } from 'node:crypto';
import { errors, jwtVerify } from 'jose';
import { GatewayError } from '../errors.js';
import { isCanonicalCompactToken } from './canonical-token.js';
import { revocationKey, type RevokedTokens } from './revoked-tokens.js';

export type AuthenticatedUser = {
  readonly userId: number;
  /** When the token stops being valid (its `exp` plus the leeway), in epoch milliseconds. */
  readonly validUntilMs: number;
  /** Where Matcha's logout would revoke this token: open sockets are checked against it (revocation-sweep.ts). */
  readonly revocationKey: string;
};

/**
 * @throws GatewayError `unauthorized` with a message saying what is wrong with the token; `unavailable` when
 * Redis cannot say whether it is revoked (the token may be fine: the client must not log its user out).
 */
export type VerifyToken = (token: string, options?: { readonly claimedUserId?: string | undefined }) => Promise<AuthenticatedUser>;

/** Matcha's auth service issues `sub` as a string of digits; user ids are positive integers. */
const USER_ID = /^[1-9][0-9]{0,14}$/;

/**
 * Verifies a Matcha access token: its one canonical spelling (see canonical-token.ts), HS256 only (so
 * `alg: none` and asymmetric algorithms are refused), a valid signature, `exp` present and not past, `nbf`
 * not in the future (both with `leewaySeconds` of clock skew), `sub` a JSON string of digits, an
 * `X-User-ID` equal to `sub` when the request carries one, and not revoked.
 */
export function createTokenVerifier(deps: {
  readonly secret: string;
  readonly leewaySeconds: number;
  readonly revokedTokens: RevokedTokens;
  readonly clock: () => Date;
}): VerifyToken {
  const secret = new TextEncoder().encode(deps.secret);
  // Imported once: given the raw secret, jose imports a WebCrypto key of its own on every call (about 9 KiB
  // of garbage per token checked, thousands of them while sockets open together: docs/benchmarks.md).
  let key: Promise<webcrypto.CryptoKey> | undefined;
  return async (token, options = {}) => {
    if (!isCanonicalCompactToken(token)) throw new GatewayError('unauthorized', 'token is malformed (not canonical compact form)');
    let payload;
    try {
      key ??= webcrypto.subtle.importKey('raw', secret, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
      ({ payload } = await jwtVerify(token, await key, {
        algorithms: ['HS256'],
        clockTolerance: deps.leewaySeconds,
        currentDate: deps.clock(),
        requiredClaims: ['exp', 'sub'],
      }));
    } catch (error) {
      throw new GatewayError('unauthorized', reasonOf(error));
    }
    // jose does not check the type of `sub`, and RegExp.test would turn 42 or ["42"] into "42".
    const sub: unknown = payload.sub;
    if (typeof sub !== 'string' || !USER_ID.test(sub)) throw new GatewayError('unauthorized', 'token subject is not a user id');
    const claimed = options.claimedUserId;
    if (claimed !== undefined && claimed.trim() !== sub) {
      throw new GatewayError('unauthorized', 'X-User-ID does not match the token');
    }
    const revocation = revocationKey(token);
    if (await deps.revokedTokens.isRevoked(revocation)) throw new GatewayError('unauthorized', 'token has been revoked');
    return { userId: Number(sub), validUntilMs: ((payload.exp ?? 0) + deps.leewaySeconds) * 1000, revocationKey: revocation };
  };
}

function reasonOf(error: unknown): string {
  if (error instanceof errors.JWTExpired) return 'token has expired';
  if (error instanceof errors.JOSEAlgNotAllowed) return 'token algorithm not allowed (HS256 only)';
  if (error instanceof errors.JWSSignatureVerificationFailed) return 'token signature is invalid';
  if (error instanceof errors.JWTClaimValidationFailed) {
    if (error.claim === 'nbf') return 'token is not valid yet';
    return `token claim "${error.claim}" is invalid or missing`;
  }
  return 'token is malformed';
}
