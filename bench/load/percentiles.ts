/** Latency summary in milliseconds; NaN fields when nothing was measured. */
export type LatencySummary = {
  readonly count: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
};

/** Nearest-rank percentiles of every sample (no histogram: a run holds at most a few hundred thousand). */
export function summarize(samples: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(samples).sort();
  const at = (p: number): number =>
    sorted.length === 0 ? Number.NaN : (sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN);
  return { count: sorted.length, p50: at(50), p90: at(90), p99: at(99), max: sorted.length === 0 ? Number.NaN : (sorted.at(-1) ?? Number.NaN) };
}

export function formatLatency(summary: LatencySummary): string {
  // A report read back from JSON has null where there was NaN (no samples).
  const ms = (value: number | null): string =>
    typeof value !== 'number' || Number.isNaN(value) ? '-' : value < 10 ? value.toFixed(2) : value.toFixed(1);
  return `p50 ${ms(summary.p50)} ms, p90 ${ms(summary.p90)} ms, p99 ${ms(summary.p99)} ms, max ${ms(summary.max)} ms (${summary.count} samples)`;
}
