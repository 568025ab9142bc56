export type BackoffSettings = { readonly initialMs: number; readonly maxMs: number };

export const DEFAULT_BACKOFF: BackoffSettings = { initialMs: 500, maxMs: 30_000 };

/**
 * The wait before reconnect attempt `attempt` (0 for the first after a drop): exponential, capped at `maxMs`,
 * with "equal jitter": uniformly within [cap / 2, cap], where cap = min(maxMs, initialMs * 2^attempt). The
 * lower half keeps a floor under the wait; the upper half spreads the clients of a restarted gateway so they
 * do not all come back at one instant. `random` returns a number in [0, 1).
 */
export function backoffDelay(attempt: number, settings: BackoffSettings, random: () => number = Math.random): number {
  const cap = Math.min(settings.maxMs, settings.initialMs * 2 ** Math.min(attempt, 52));
  return Math.round(cap / 2 + random() * (cap / 2));
}
