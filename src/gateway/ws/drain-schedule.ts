/** One step of a drain: `count` more sockets close `atMs` after the drain began. */
export type DrainTick = { readonly atMs: number; readonly count: number };

/** How far apart the closing steps are: a timer per step, not one per socket. */
export const DRAIN_TICK_MS = 50;

/**
 * Which sockets close when, so that clients told to reconnect (1012) arrive at the other gateways spread
 * over `windowMs` rather than all at the same instant. Ticks `tickMs` apart (fewer when there are fewer
 * sockets), the first at 0 and the last one tick before the window's end; their counts add up to `count`
 * and differ by one at most. A window of 0 closes everything at once.
 */
export function drainSchedule(count: number, windowMs: number, tickMs = DRAIN_TICK_MS): DrainTick[] {
  if (count <= 0) return [];
  const ticks = Math.max(1, Math.min(count, Math.floor(windowMs / tickMs)));
  const schedule: DrainTick[] = [];
  for (let tick = 0; tick < ticks; tick++) {
    const closed = (t: number) => Math.floor((t * count) / ticks);
    schedule.push({ atMs: Math.round((tick * windowMs) / ticks), count: closed(tick + 1) - closed(tick) });
  }
  return schedule;
}
