import type { LoadReport } from './run-load.js';

/** What "sustained" means for `--find-max` (the p99 bound can be changed with `--max-p99`). */
export const SUSTAINED = { p99Ms: 100, minAchievedShare: 0.95 } as const;

export type Step = { readonly rate: number; readonly report: LoadReport; readonly passed: boolean; readonly why: string };

/**
 * A load step passes when the tool achieved the rate asked (within 5 %), every message was acknowledged and
 * delivered to its recipient (nothing lost, rejected or unanswered), and p99 send-to-delivery < `maxP99Ms`.
 */
export function judge(report: LoadReport, maxP99Ms: number = SUSTAINED.p99Ms): { passed: boolean; why: string } {
  const send = report.send;
  if (!send) return { passed: false, why: 'no send report' };
  const rejected = Object.values(send.rejected).reduce((sum, count) => sum + count, 0);
  const reasons = [
    report.connect.failed > 0 && `${report.connect.failed} sockets failed to connect`,
    report.setup.failed > 0 && `${report.setup.failed} conversations failed`,
    send.lost > 0 && `${send.lost} lost`,
    rejected > 0 && `${rejected} rejected`,
    send.unanswered > 0 && `${send.unanswered} unanswered`,
    // No latency sample at all (null once read back from JSON) is a failure too.
    !(typeof send.latencyMs.p99 === 'number' && send.latencyMs.p99 < maxP99Ms) && `p99 ${Number(send.latencyMs.p99).toFixed(0)} ms`,
    send.achievedRate < SUSTAINED.minAchievedShare * report.rate && `achieved ${send.achievedRate.toFixed(0)}/s`,
  ].filter((reason): reason is string => typeof reason === 'string');
  return { passed: reasons.length === 0, why: reasons.length === 0 ? 'ok' : reasons.join(', ') };
}

/**
 * Step search for the highest passing rate: from `start`, double while steps pass (halve while they fail),
 * then bisect between the best pass and the lowest fail until they are within `precision` (10 %) of each
 * other or `maxSteps` ran. Rates are rounded to 10 messages/s.
 */
export async function findMaxRate(
  runStep: (rate: number) => Promise<LoadReport>,
  options: {
    readonly start: number;
    readonly ceiling: number;
    readonly maxP99Ms?: number;
    readonly precision?: number;
    readonly maxSteps?: number;
    readonly onStep?: (step: Step) => void;
  },
): Promise<{ readonly best: number | null; readonly steps: readonly Step[] }> {
  const precision = options.precision ?? 0.1;
  const maxSteps = options.maxSteps ?? 12;
  const steps: Step[] = [];
  // Mutated inside run(): an object, so that the narrowing below reads the current values.
  const bounds: { pass: number | null; fail: number | null } = { pass: null, fail: null };
  const round = (rate: number): number => Math.max(10, Math.round(rate / 10) * 10);

  const run = async (rate: number): Promise<boolean> => {
    const report = await runStep(rate);
    const verdict = judge(report, options.maxP99Ms);
    const step = { rate, report, ...verdict };
    steps.push(step);
    options.onStep?.(step);
    if (verdict.passed) bounds.pass = Math.max(bounds.pass ?? 0, rate);
    else bounds.fail = Math.min(bounds.fail ?? Number.POSITIVE_INFINITY, rate);
    return verdict.passed;
  };

  let rate = round(options.start);
  // Bracket.
  while (steps.length < maxSteps) {
    const passed = await run(rate);
    if (passed && rate >= options.ceiling) return { best: bounds.pass, steps };
    if (passed && bounds.fail === null) rate = round(Math.min(options.ceiling, rate * 2));
    else if (!passed && bounds.pass === null) {
      if (rate <= 10) return { best: null, steps };
      rate = round(rate / 2);
    } else break;
  }
  // Bisect.
  for (;;) {
    const { pass, fail } = bounds;
    if (steps.length >= maxSteps || pass === null || fail === null || (fail - pass) / pass <= precision) break;
    const middle = round((pass + fail) / 2);
    if (middle === pass || middle === fail) break;
    await run(middle);
  }
  return { best: bounds.pass, steps };
}
