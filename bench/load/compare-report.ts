import type { Step } from './find-max.js';
import { formatBytes } from './resident-memory.js';
import type { LoadReport } from './run-load.js';
import type { SystemName } from './systems.js';

type Row = readonly [label: string, ours: number | undefined, baseline: number | undefined, digits?: number];

/** undefined: no such system; null (NaN in JSON) or NaN: nothing measured. */
const cell = (value: number | null | undefined, digits = 0): string =>
  typeof value !== 'number' || Number.isNaN(value) ? '-' : value.toFixed(digits);

function ratio(ours: number | null | undefined, baseline: number | null | undefined): string {
  if (typeof ours !== 'number' || typeof baseline !== 'number' || Number.isNaN(ours) || Number.isNaN(baseline)) return '-';
  if (baseline === 0) return ours === 0 ? '=' : '-';
  return `${(ours / baseline).toFixed(2)}x`;
}

/** A table with one column per system and their ratio (ours / baseline). */
export function sideBySide(rows: readonly Row[]): string {
  const header = ['', 'ours', 'baseline', 'ours/baseline'];
  const body = rows.map(([label, ours, baseline, digits]) => [label, cell(ours, digits), cell(baseline, digits), ratio(ours, baseline)]);
  const widths = header.map((_, column) => Math.max(...[header, ...body].map((row) => (row[column] ?? '').length)));
  return [header, ...body].map((row) => row.map((text, column) => (column === 0 ? text.padEnd(widths[0] ?? 0) : text.padStart(widths[column] ?? 0))).join('  ')).join('\n');
}

export function rateRows(reports: Partial<Record<SystemName, LoadReport>>): Row[] {
  const pick = (name: SystemName, get: (report: LoadReport) => number | undefined) => {
    const report = reports[name];
    return report ? get(report) : undefined;
  };
  const row = (label: string, get: (report: LoadReport) => number | undefined, digits = 0): Row => [label, pick('ours', get), pick('baseline', get), digits];
  return [
    row('sockets connected', (report) => report.connect.connected),
    row('sent', (report) => report.send?.sent),
    row('achieved rate (/s)', (report) => report.send?.achievedRate),
    row('acknowledged', (report) => report.send?.acked),
    row('rejected (any error)', (report) =>
      report.send === undefined ? undefined : Object.values(report.send.rejected).reduce((sum, count) => sum + count, 0)),
    row('unanswered', (report) => report.send?.unanswered),
    row('delivered to recipient', (report) => report.send?.delivered),
    row('lost', (report) => report.send?.lost),
    row('duplicated', (report) => report.send?.duplicated),
    row('out of order', (report) => report.send?.outOfOrder),
    row('latency p50 (ms)', (report) => report.send?.latencyMs.p50, 1),
    row('latency p90 (ms)', (report) => report.send?.latencyMs.p90, 1),
    row('latency p99 (ms)', (report) => report.send?.latencyMs.p99, 1),
    row('latency max (ms)', (report) => report.send?.latencyMs.max, 1),
    row('ack p50 (ms)', (report) => report.send?.ackLatencyMs.p50, 1),
    row('ack p99 (ms)', (report) => report.send?.ackLatencyMs.p99, 1),
    // From each send's scheduled time: the figures issue 17 compares (the rows above leave out the tool's lag).
    row('from schedule p50 (ms)', (report) => report.send?.fromScheduleMs?.p50, 1),
    row('from schedule p90 (ms)', (report) => report.send?.fromScheduleMs?.p90, 1),
    row('from schedule p99 (ms)', (report) => report.send?.fromScheduleMs?.p99, 1),
    row('from schedule max (ms)', (report) => report.send?.fromScheduleMs?.max, 1),
    row('ack from schedule p99 (ms)', (report) => report.send?.ackFromScheduleMs?.p99, 1),
    row('tool lag p50 (ms)', (report) => report.send?.sendLagMs?.p50, 1),
    row('tool lag p99 (ms)', (report) => report.send?.sendLagMs?.p99, 1),
    row('tool lag max (ms)', (report) => report.send?.maxSendLagMs, 1),
    row('GETs during the send', (report) => report.send?.reads?.sent),
    row('GET p50 (ms)', (report) => report.send?.reads?.latencyMs.p50, 1),
    row('GET p99 (ms)', (report) => report.send?.reads?.latencyMs.p99, 1),
    row('GET 503 read_model_behind', (report) => (report.send?.reads ? (report.send.reads.answers['503'] ?? 0) : undefined)),
    row('system CPU, send+grace (s)', (report) => (report.send?.serverCpuMs === undefined ? undefined : report.send.serverCpuMs / 1000), 1),
    row('system CPU per ack (ms)', (report) =>
      report.send?.serverCpuMs === undefined ? undefined : report.send.serverCpuMs / Math.max(1, report.send.acked), 2),
    row('servers CPU per ack (ms)', (report) =>
      report.send?.infraCpuMs === undefined ? undefined : report.send.infraCpuMs / Math.max(1, report.send.acked), 2),
    row('load tool CPU per ack (ms)', (report) =>
      report.send?.loadToolCpuMs === undefined ? undefined : report.send.loadToolCpuMs / Math.max(1, report.send.acked), 2),
  ];
}

export function formatStep(system: SystemName, step: Step): string {
  const send = step.report.send;
  return (
    `${system} at ${step.rate}/s: ${step.passed ? 'PASS' : 'FAIL'} (${step.why}); ` +
    `achieved ${send?.achievedRate.toFixed(0) ?? '-'}/s, p50 ${cell(send?.latencyMs.p50, 1)} ms, p99 ${cell(send?.latencyMs.p99, 1)} ms, ` +
    `lost ${send?.lost ?? '-'}`
  );
}

export function formatIdle(count: number, reports: Partial<Record<SystemName, LoadReport>>): string {
  const lines = [`idle sockets: ${count}`];
  for (const [name, report] of Object.entries(reports)) {
    const memory = report.idle?.memory;
    lines.push(
      `  ${name.padEnd(8)} connected ${report.connect.connected}, open after ${report.seconds} s ${report.idle?.open ?? '-'}` +
        (memory
          ? `; RSS before ${formatBytes(memory.beforeBytes)}, connected ${formatBytes(memory.connectedBytes)}, end ${formatBytes(memory.endBytes)}: ` +
            `${formatBytes(memory.perSocketBytes)} per socket`
          : ''),
    );
  }
  return lines.join('\n');
}
