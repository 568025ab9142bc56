import { nowMs } from './content-tag.js';
import { sleep } from './bounded-parallel.js';

export type Schedule = { readonly startAt: number; readonly rate: number; readonly total: number };

/**
 * Open loop on one clock: calls `due(i, lateMs, scheduledAt)` for i = 0 .. total-1 at `scheduledAt =
 * startAt + i / rate`, catching up at once when late (it never slows down because the server does). `lateMs`
 * is how late the call is.
 * @returns when the first and the last calls were made (NaN when none was).
 */
export async function paceOpenLoop(schedule: Schedule, due: (i: number, lateMs: number, scheduledAt: number) => void): Promise<{ firstAt: number; lastAt: number }> {
  let firstAt = Number.NaN;
  let lastAt = Number.NaN;
  if (schedule.total <= 0) return { firstAt, lastAt };
  await sleep(Math.max(0, schedule.startAt - nowMs()));
  const interval = 1_000 / schedule.rate;
  let i = 0;
  await new Promise<void>((resolve) => {
    const tick = (): void => {
      const now = nowMs();
      const dueNow = Math.min(schedule.total, Math.floor((now - schedule.startAt) / interval) + 1);
      if (i < dueNow && Number.isNaN(firstAt)) firstAt = now;
      for (; i < dueNow; i++) {
        const scheduledAt = schedule.startAt + i * interval;
        due(i, now - scheduledAt, scheduledAt);
      }
      lastAt = now;
      if (i >= schedule.total) return resolve();
      setTimeout(tick, Math.max(1, schedule.startAt + i * interval - nowMs()));
    };
    tick();
  });
  return { firstAt, lastAt };
}
