/**
 * When to send an `auth` frame with a fresh token: `refreshBeforeMs` before the current token's `exp`.
 * The token is only read (its payload's `exp`), never verified: the server does that.
 */

/** The `exp` claim of a compact JWT in milliseconds since the epoch, or null when it has none or is not a JWT. */
export function tokenExpiryMs(token: string): number | null {
  const payload = token.split('.')[1];
  if (payload === undefined || payload === '') return null;
  try {
    const base64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const padded = base64 + '='.repeat((4 - (base64.length % 4)) % 4);
    const binary = atob(padded);
    const bytes = Uint8Array.from(binary, (char) => char.charCodeAt(0));
    const claims: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (typeof claims !== 'object' || claims === null) return null;
    const exp = (claims as Record<string, unknown>)['exp'];
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : null;
  } catch {
    return null;
  }
}

/** A refresh never comes sooner than this after the previous one, even for a token about to expire. */
export const MIN_REFRESH_INTERVAL_MS = 5_000;

/**
 * Milliseconds from `nowMs` until the refresh of `token`, or null when the token has no `exp` (nothing to
 * refresh). A token already inside its refresh window is refreshed after MIN_REFRESH_INTERVAL_MS, so an app
 * that keeps handing out the same short token does not make the client spin.
 */
export function refreshDelayMs(token: string, nowMs: number, refreshBeforeMs: number): number | null {
  const expiry = tokenExpiryMs(token);
  if (expiry === null) return null;
  return Math.max(MIN_REFRESH_INTERVAL_MS, expiry - refreshBeforeMs - nowMs);
}
