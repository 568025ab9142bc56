/**
 * Where a message is on the live path, and when: the load tool's per-hop breakdown (bench/load/hop-breakdown.ts)
 * joins what each role recorded here with what its clients saw. Off unless HOP_TIMES_CAPACITY > 0 (a benchmark
 * setting): then a role keeps, per event, the times it reached this role's points, at most `capacity` events
 * (the oldest forgotten first), served as JSON on its ops port (`GET /hop-times`). Off, `mark` is never called:
 * the callers test `enabled` first, so the hot path pays one branch.
 *
 * An event is keyed by its conversation and version (`hopKey`): what the gateway gets back from the append,
 * what the relay and the fan-out read, and the `conversation_id` and `seq` of its frame. Times are
 * `hopClock()`: `performance.timeOrigin + performance.now()`, one clock for every process of a machine (the
 * load tool's too), in milliseconds with sub-millisecond resolution.
 */
export const HOP_POINTS = [
  /** Gateway: `sendMessage` called (after the socket's frame queue and parse). */
  'gateway_received',
  /** Gateway: the send batch holding the message started (rate limit and reads, decide, append follow). */
  'batch_started',
  /** Gateway: the batch's rate limit and reads (`readForSends`) returned; it decides and appends next. */
  'batch_read',
  /** Gateway: the batch's append committed (its answer is back). */
  'committed',
  /** Sender's gateway: the fast-path copy was published to the participants' signal subjects. */
  'fast_path_published',
  /** Gateway: the recipient's fast-path copy came off its signal subject, parsed and validated. */
  'fast_path_received',
  /** Relay: the feed read holding the event returned. */
  'relay_read',
  /** Relay: JetStream acknowledged every publish of that read. */
  'relay_acked',
  /** JetStream: the stream's timestamp of the message (nats-server's clock), as the fan-out sees it. */
  'stored',
  /** Fan-out: the consumer handed the message over. */
  'fanout_fetched',
  /** Fan-out: its frames were published on the participants' delivery subjects. */
  'fanout_published',
  /** Gateway: the recipient's frame came off its delivery subject, parsed and validated. */
  'delivery_received',
  /** Gateway: the frame was first written to the recipient's sockets (their writers), by either path. */
  'socket_written',
] as const;

export type HopPoint = (typeof HOP_POINTS)[number];

export type HopRecord = Partial<Record<HopPoint, number>>;

export type HopTimes = {
  readonly enabled: boolean;
  /** Records that the event `key` reached `point` at `at` (now by default). */
  mark(key: string, point: HopPoint, at?: number): void;
  /** As `mark`, unless the event already reached `point`: the first time counts. */
  markFirst(key: string, point: HopPoint, at?: number): void;
  /** Every event kept, oldest first. */
  records(): Record<string, HopRecord>;
};

export const hopKey = (conversationId: string, version: number): string => `${conversationId}:${version}`;

export const hopClock = (): number => performance.timeOrigin + performance.now();

const DISABLED: HopTimes = {
  enabled: false,
  mark: () => undefined,
  markFirst: () => undefined,
  records: () => ({}),
};

/** A recorder keeping at most `capacity` events; capacity 0 is the disabled one. */
export function createHopTimes(capacity: number): HopTimes {
  if (!Number.isInteger(capacity) || capacity < 0) throw new Error(`capacity must be a non-negative integer, got ${capacity}`);
  if (capacity === 0) return DISABLED;
  // A Map iterates in insertion order: the first key is the oldest event.
  const byKey = new Map<string, HopRecord>();
  const mark = (key: string, point: HopPoint, at: number, first: boolean): void => {
    const record = byKey.get(key);
    if (record) {
      if (!first || record[point] === undefined) record[point] = at;
      return;
    }
    byKey.set(key, { [point]: at });
    if (byKey.size > capacity) byKey.delete(byKey.keys().next().value as string);
  };
  return {
    enabled: true,
    mark: (key, point, at = hopClock()) => mark(key, point, at, false),
    markFirst: (key, point, at = hopClock()) => mark(key, point, at, true),
    records: () => Object.fromEntries(byKey),
  };
}
