import { formatHopBreakdown } from './hop-breakdown.js';
import { formatLatency } from './percentiles.js';
import { READ_KINDS } from './reader.js';
import { formatBytes } from './resident-memory.js';
import type { LoadReport } from './run-load.js';

const counts = (record: Readonly<Record<string, number>>): string =>
  Object.keys(record).length === 0 ? 'none' : Object.entries(record).map(([key, value]) => `${key}: ${value}`).join(', ');

/** The human-readable report of one load run. */
export function formatLoadReport(report: LoadReport): string {
  const lines = [
    `${report.users} users over ${report.gateways} gateway(s), ${report.workers} worker process(es)`,
    `connected ${report.connect.connected}, failed ${report.connect.failed}` +
      (report.connect.failed > 0 ? ` (${counts(report.connect.failures)})` : '') +
      `, ${(report.connect.ms / 1000).toFixed(1)} s`,
  ];
  if (report.idle) {
    lines.push(`held ${report.seconds} s: ${report.idle.open} still open; closed by the server: ${counts(report.idle.disconnects)}`);
    const memory = report.idle.memory;
    if (memory) {
      lines.push(
        `gateway resident memory: before ${formatBytes(memory.beforeBytes)}, connected ${formatBytes(memory.connectedBytes)}, ` +
          `end ${formatBytes(memory.endBytes)}; ${formatBytes(memory.perSocketBytes)} per socket`,
      );
    }
  }
  const send = report.send;
  if (send) {
    lines.push(
      `conversations ${report.setup.conversations}` + (report.setup.failed > 0 ? ` (${report.setup.failed} failed: ${counts(report.setup.failures)})` : ''),
      `sent         ${send.sent} at ${send.achievedRate.toFixed(0)}/s (asked ${report.rate}/s for ${report.seconds} s via ${report.via}; tool lag at worst ${send.maxSendLagMs.toFixed(0)} ms)`,
      `acknowledged ${send.acked}; rejected ${counts(send.rejected)}; unanswered ${send.unanswered}`,
      `delivered    ${send.delivered} to the recipient (echo to the sender: ${send.echoed})`,
      `lost         ${send.lost} (acknowledged, never delivered to the recipient)`,
      `duplicated   ${send.duplicated}`,
      `out of order ${send.outOfOrder}`,
      `latency send -> recipient: ${formatLatency(send.latencyMs)}`,
      `latency send -> ack:       ${formatLatency(send.ackLatencyMs)}`,
      `from schedule -> recipient: ${formatLatency(send.fromScheduleMs)}`,
      `from schedule -> ack:       ${formatLatency(send.ackFromScheduleMs)}`,
      `tool lag (scheduled -> sent): ${formatLatency(send.sendLagMs)}`,
      `sockets closed by the server during the run: ${counts(send.disconnects)}`,
    );
    if (send.serverCpuMs !== undefined) {
      lines.push(
        `server CPU   ${(send.serverCpuMs / 1000).toFixed(1)} s during send and grace, ` +
          `${(send.serverCpuMs / Math.max(1, send.acked)).toFixed(2)} ms per acknowledged message`,
      );
    }
    if (send.infraCpuMs !== undefined) {
      lines.push(
        `servers CPU  ${(send.infraCpuMs / 1000).toFixed(1)} s (Postgres, NATS, Redis), ` +
          `${(send.infraCpuMs / Math.max(1, send.acked)).toFixed(2)} ms per acknowledged message`,
      );
    }
    if (send.reads) {
      const { reads } = send;
      lines.push(
        `reads        ${reads.sent} GETs at ${reads.rate}/s during the send; answers ${counts(reads.answers)}`,
        `latency GET (all):          ${formatLatency(reads.latencyMs)}`,
        ...READ_KINDS.map((kind) => `latency GET ${kind.padEnd(15)} ${formatLatency(reads.byKindMs[kind])}`),
      );
    }
    if (send.hops) lines.push(formatHopBreakdown(send.hops));
    if (send.loadToolCpuMs !== undefined) {
      lines.push(`load tool    ${(send.loadToolCpuMs / 1000).toFixed(1)} s CPU`);
    }
  }
  return lines.join('\n');
}
