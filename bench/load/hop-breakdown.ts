import type { HopPoint, HopRecord } from '../../src/shared/hop-times.js';
import type { TimedDeliveries } from './delivery-tracker.js';
import { summarize, type LatencySummary } from './percentiles.js';

/** The client's points around the roles' (src/shared/hop-times.ts). */
type ClientPoint = 'scheduled' | 'sent' | 'client_received';
export type ChainPoint = ClientPoint | HopPoint;

const isClientPoint = (point: ChainPoint): point is ClientPoint => point === 'scheduled' || point === 'sent' || point === 'client_received';

/** Which copy reached the recipient's socket first: the fast path's (from the sender's gateway) or the ordered path's. */
export type DeliveryPath = 'fast' | 'ordered';

/** A hop between two points; one with a `path` is timed only over the deliveries that took that path. */
export type Hop = { readonly label: string; readonly from: ChainPoint; readonly to: ChainPoint; readonly path?: DeliveryPath };

/**
 * The live path of one message, hop by hop. The hops marked `chain` follow each other, so per message they
 * add up to the total over the hops of its path; the others look at part of the path from another side (the
 * relay's publish ack runs alongside JetStream storing and delivering the message to the fan-out).
 */
export const HOPS: readonly (Hop & { readonly chain: boolean })[] = [
  { label: 'tool lag (scheduled -> sent)', from: 'scheduled', to: 'sent', chain: true },
  { label: 'client -> gateway sendMessage', from: 'sent', to: 'gateway_received', chain: true },
  { label: 'batching (-> batch start)', from: 'gateway_received', to: 'batch_started', chain: true },
  { label: 'batch reads (rate limit, client ids, streams)', from: 'batch_started', to: 'batch_read', chain: true },
  { label: 'append commit (decide, append -> commit)', from: 'batch_read', to: 'committed', chain: true },
  { label: 'fast: commit -> copy published', from: 'committed', to: 'fast_path_published', chain: true, path: 'fast' },
  { label: 'fast: published -> gateway receipt', from: 'fast_path_published', to: 'fast_path_received', chain: true, path: 'fast' },
  { label: 'fast: gateway -> socket write', from: 'fast_path_received', to: 'socket_written', chain: true, path: 'fast' },
  { label: 'commit -> relay read (NOTIFY, feed)', from: 'committed', to: 'relay_read', chain: true, path: 'ordered' },
  { label: 'relay read -> JetStream stored', from: 'relay_read', to: 'stored', chain: true, path: 'ordered' },
  { label: 'JetStream stored -> fan-out fetch', from: 'stored', to: 'fanout_fetched', chain: true, path: 'ordered' },
  { label: 'fan-out fetch -> frames published', from: 'fanout_fetched', to: 'fanout_published', chain: true, path: 'ordered' },
  { label: 'fan-out publish -> gateway receipt', from: 'fanout_published', to: 'delivery_received', chain: true, path: 'ordered' },
  { label: 'gateway -> socket write', from: 'delivery_received', to: 'socket_written', chain: true, path: 'ordered' },
  { label: 'socket write -> client receipt', from: 'socket_written', to: 'client_received', chain: true },
  { label: 'total (scheduled -> client receipt)', from: 'scheduled', to: 'client_received', chain: false },
  { label: '(relay read -> JetStream publish ack)', from: 'relay_read', to: 'relay_acked', chain: false },
];

export type HopSummary = Hop & { readonly latencyMs: LatencySummary };

export type HopBreakdown = {
  /** Timed deliveries of the client. */
  readonly deliveries: number;
  /** Of those, how many the roles had a record of (any point). */
  readonly matched: number;
  /** Of those, how many were written first by the fast path. */
  readonly fast: number;
  readonly hops: readonly HopSummary[];
};

/** One record per key from every role's records: a gateway's, the relay's, the fan-out's points together. */
export function mergeHopRecords(sources: readonly Readonly<Record<string, HopRecord>>[]): Map<string, HopRecord> {
  const merged = new Map<string, HopRecord>();
  for (const source of sources) {
    for (const [key, record] of Object.entries(source)) merged.set(key, { ...merged.get(key), ...record });
  }
  return merged;
}

/**
 * The fast path's copy was written first when it was written at all (`socket_written` follows its receipt)
 * and before the ordered copy came in.
 */
export function deliveryPath(record: HopRecord | undefined): DeliveryPath {
  const written = record?.socket_written;
  const fast = record?.fast_path_received;
  if (written === undefined || fast === undefined || written < fast) return 'ordered';
  return record?.delivery_received === undefined || written <= record.delivery_received ? 'fast' : 'ordered';
}

/**
 * Per hop, the time between its two points over every timed delivery that has both (a hop may be negative
 * for some messages: the relay can read a commit before the gateway's event loop takes the commit's answer).
 */
export function hopBreakdown(timed: readonly TimedDeliveries[], records: ReadonlyMap<string, HopRecord>): HopBreakdown {
  const samples = new Map<Hop['label'], number[]>(HOPS.map((hop) => [hop.label, []]));
  let deliveries = 0;
  let matched = 0;
  let fast = 0;
  for (const part of timed) {
    part.keys.forEach((key, index) => {
      deliveries++;
      const record = records.get(key);
      if (record) matched++;
      const path = deliveryPath(record);
      if (path === 'fast') fast++;
      const client: Readonly<Record<ClientPoint, number | undefined>> = {
        scheduled: part.scheduledAt[index],
        sent: part.sentAt[index],
        client_received: part.receivedAt[index],
      };
      const at = (point: ChainPoint): number | undefined => (isClientPoint(point) ? client[point] : record?.[point]);
      for (const hop of HOPS) {
        if (hop.path !== undefined && hop.path !== path) continue;
        const from = at(hop.from);
        const to = at(hop.to);
        if (from !== undefined && to !== undefined) samples.get(hop.label)?.push(to - from);
      }
    });
  }
  return { deliveries, matched, fast, hops: HOPS.map(({ label, from, to }) => ({ label, from, to, latencyMs: summarize(samples.get(label) ?? []) })) };
}

/** The breakdown as a table: one line per hop, p50/p90/p99/max in ms and how many messages had both points. */
export function formatHopBreakdown(breakdown: HopBreakdown): string {
  const ms = (value: number | null): string => (typeof value !== 'number' || Number.isNaN(value) ? '-' : value.toFixed(2));
  const width = Math.max(...breakdown.hops.map((hop) => hop.label.length));
  const header = `${'hop'.padEnd(width)}  ${['p50', 'p90', 'p99', 'max'].map((name) => `${name} ms`.padStart(9)).join('')}  ${'messages'.padStart(8)}`;
  const lines = breakdown.hops.map(
    ({ label, latencyMs }) =>
      `${label.padEnd(width)}  ${[latencyMs.p50, latencyMs.p90, latencyMs.p99, latencyMs.max].map((value) => ms(value).padStart(9)).join('')}  ${String(latencyMs.count).padStart(8)}`,
  );
  const title = `per hop, over ${breakdown.matched} of ${breakdown.deliveries} timed deliveries found in the roles' records (${breakdown.fast} written first by the fast path):`;
  return [title, header, ...lines].join('\n');
}
