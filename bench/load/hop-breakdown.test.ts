import { describe, expect, it } from 'vitest';
import { HOP_POINTS, type HopRecord } from '../../src/shared/hop-times.js';
import type { TimedDeliveries } from './delivery-tracker.js';
import { formatHopBreakdown, HOPS, hopBreakdown, mergeHopRecords } from './hop-breakdown.js';

const timed = (rows: readonly { key: string; scheduled: number; sent: number; received: number }[]): TimedDeliveries => ({
  keys: rows.map((row) => row.key),
  scheduledAt: Float64Array.from(rows, (row) => row.scheduled),
  sentAt: Float64Array.from(rows, (row) => row.sent),
  receivedAt: Float64Array.from(rows, (row) => row.received),
});

const FAST_POINTS: readonly string[] = ['fast_path_published', 'fast_path_received'];

/** Every role point of one message delivered by the ordered path, `step` ms apart from `start`, in HOP_POINTS order. */
const fullRecord = (start: number, step: number): HopRecord =>
  Object.fromEntries(HOP_POINTS.filter((point) => !FAST_POINTS.includes(point)).map((point, index) => [point, start + step * (index + 1)]));

const hop = (breakdown: ReturnType<typeof hopBreakdown>, label: string) => breakdown.hops.find((entry) => entry.label === label)!.latencyMs;

/** The chained hops of one delivery added up: those of its path (the other path's have no sample). */
const chainedSum = (breakdown: ReturnType<typeof hopBreakdown>): number =>
  HOPS.filter((entry) => entry.chain)
    .map((entry) => hop(breakdown, entry.label))
    .filter((latency) => latency.count > 0)
    .reduce((sum, latency) => sum + (latency.p50 ?? Number.NaN), 0);

describe('the per-hop breakdown', () => {
  it('merges the records of several roles per key, point by point', () => {
    const merged = mergeHopRecords([
      { 'c:1': { gateway_received: 1, committed: 3 }, 'c:2': { committed: 9 } },
      { 'c:1': { relay_read: 4 } },
      { 'c:1': { fanout_fetched: 6 }, 'c:3': { stored: 7 } },
    ]);
    expect(Object.fromEntries(merged)).toEqual({
      'c:1': { gateway_received: 1, committed: 3, relay_read: 4, fanout_fetched: 6 },
      'c:2': { committed: 9 },
      'c:3': { stored: 7 },
    });
  });

  it('times each hop between its two points, the client\'s and the roles\', per delivery', () => {
    // Role points 1 ms apart from 100 (gateway_received = 101 ... socket_written = 111).
    const records = new Map([['c:1', fullRecord(100, 1)]]);
    const breakdown = hopBreakdown([timed([{ key: 'c:1', scheduled: 90, sent: 95, received: 130 }])], records);
    expect(breakdown).toMatchObject({ deliveries: 1, matched: 1, fast: 0 });
    expect(hop(breakdown, 'tool lag (scheduled -> sent)').p50).toBe(5);
    expect(hop(breakdown, 'client -> gateway sendMessage').p50).toBe(6);
    expect(hop(breakdown, 'batch reads (rate limit, client ids, streams)').p50).toBe(1);
    expect(hop(breakdown, 'append commit (decide, append -> commit)').p50).toBe(1);
    expect(hop(breakdown, 'socket write -> client receipt').p50).toBe(19);
    expect(hop(breakdown, 'total (scheduled -> client receipt)').p50).toBe(40);
    expect(hop(breakdown, '(relay read -> JetStream publish ack)').p50).toBe(1);
  });

  it('makes the chained hops add up to the total for every message', () => {
    const records = new Map([
      ['c:1', { ...fullRecord(100, 2), stored: 112.5 }],
      ['c:2', fullRecord(200, 0.5)],
    ]);
    const breakdown = hopBreakdown([timed([{ key: 'c:1', scheduled: 98, sent: 99, received: 150 }]), timed([{ key: 'c:2', scheduled: 199, sent: 199.5, received: 206 }])], records);
    for (const [index, total] of [[0, 52], [1, 7]] as const) {
      const single = hopBreakdown([timed([{ key: `c:${index + 1}`, scheduled: index === 0 ? 98 : 199, sent: index === 0 ? 99 : 199.5, received: index === 0 ? 150 : 206 }])], records);
      expect(chainedSum(single)).toBeCloseTo(total, 9);
    }
    expect(hop(breakdown, 'total (scheduled -> client receipt)').count).toBe(2);
  });

  it('times a delivery the fast path wrote first over the fast hops, and adds them up to the total', () => {
    // committed at 103, copy published 104, received 105, written 106; the ordered copy came at 120
    const record: HopRecord = {
      gateway_received: 101, batch_started: 102, batch_read: 102.5, committed: 103, fast_path_published: 104, fast_path_received: 105,
      relay_read: 107, stored: 110, fanout_fetched: 112, fanout_published: 115, delivery_received: 120, socket_written: 106,
    };
    const breakdown = hopBreakdown([timed([{ key: 'c:1', scheduled: 99, sent: 100, received: 108 }])], new Map([['c:1', record]]));
    expect(breakdown).toMatchObject({ deliveries: 1, fast: 1 });
    expect(hop(breakdown, 'fast: published -> gateway receipt').p50).toBe(1);
    expect(hop(breakdown, 'fast: gateway -> socket write').p50).toBe(1);
    expect(hop(breakdown, 'gateway -> socket write').count).toBe(0);
    expect(hop(breakdown, 'commit -> relay read (NOTIFY, feed)').count).toBe(0);
    expect(chainedSum(breakdown)).toBe(9);
    // a copy that came in but was left to the ordered path (written after the ordered copy) is ordered
    const left = { ...record, socket_written: 121 };
    expect(hopBreakdown([timed([{ key: 'c:1', scheduled: 99, sent: 100, received: 122 }])], new Map([['c:1', left]]))).toMatchObject({ fast: 0 });
  });

  it('leaves a delivery out of the hops whose points a role did not record, and counts what matched', () => {
    const records = new Map<string, HopRecord>([['c:1', { committed: 10, relay_read: 12 }]]);
    const breakdown = hopBreakdown([timed([
      { key: 'c:1', scheduled: 0, sent: 1, received: 20 },
      { key: 'c:9', scheduled: 0, sent: 2, received: 30 },
    ])], records);
    expect(breakdown).toMatchObject({ deliveries: 2, matched: 1 });
    expect(hop(breakdown, 'commit -> relay read (NOTIFY, feed)')).toMatchObject({ count: 1, p50: 2 });
    expect(hop(breakdown, 'batching (-> batch start)').count).toBe(0);
    expect(hop(breakdown, 'tool lag (scheduled -> sent)')).toMatchObject({ count: 2, p50: 1, max: 2 });
  });

  it('keeps a negative hop as it is (the relay may read a commit before the gateway hears of it)', () => {
    const records = new Map<string, HopRecord>([['c:1', { committed: 10, relay_read: 9.5 }]]);
    const breakdown = hopBreakdown([timed([{ key: 'c:1', scheduled: 0, sent: 0, received: 20 }])], records);
    expect(hop(breakdown, 'commit -> relay read (NOTIFY, feed)').p50).toBe(-0.5);
  });

  it('prints one line per hop with its percentiles and sample count', () => {
    const records = new Map([['c:1', fullRecord(100, 1)]]);
    const text = formatHopBreakdown(hopBreakdown([timed([{ key: 'c:1', scheduled: 90, sent: 95, received: 130 }])], records));
    expect(text.split('\n')).toHaveLength(2 + HOPS.length);
    expect(text).toMatch(/over 1 of 1 timed deliveries/);
    expect(text).toMatch(/^total \(scheduled -> client receipt\)\s+40\.00\s+40\.00\s+40\.00\s+40\.00\s+1$/m);
  });
});
