/**
 * Messages between the load tool's coordinator (run-load.ts) and its worker processes (worker.ts), over
 * the IPC channel of `child_process.fork` with `serialization: 'advanced'` (typed arrays pass as they are).
 *
 * A worker owns whole conversations: both users of each of its pairs, so that sender and recipient are in
 * the same process and loss, duplicates and order are counted without shipping every message around.
 */

import type { TimedDeliveries } from './delivery-tracker.js';
import type { ReadTotals } from './reader.js';

export type Gateway = { readonly ws: string; readonly api: string };

export type WorkerAssignment = {
  readonly index: number;
  readonly runId: string;
  /** Source address of every socket and HTTP connection of this worker (127.0.0.<k>): its own ephemeral ports. */
  readonly localAddress: string;
  readonly gateways: readonly Gateway[];
  readonly jwtSecret: string;
  /** Users are `firstUserId + i`; this worker owns pairs [firstPair, firstPair + pairs). */
  readonly firstUserId: number;
  readonly firstPair: number;
  readonly pairs: number;
  /** Idle: sockets only (both users of every pair), no conversations, no sends. */
  readonly idle: boolean;
  readonly via: 'ws' | 'rest';
  readonly pick: 'random' | 'round-robin';
  readonly connectConcurrency: number;
  readonly setupConcurrency: number;
  readonly connectTimeoutMs: number;
  readonly connectAttempts: number;
  readonly tokenValiditySeconds: number;
};

export type CoordinatorMessage =
  | { readonly type: 'setup'; readonly assignment: WorkerAssignment }
  | { readonly type: 'connect' }
  /**
   * Send `total` messages at `rate` per second from `startAt` (shared clock), and meanwhile `readTotal` GETs
   * at `readRate` per second, then wait up to `graceMs`.
   */
  | {
      readonly type: 'send';
      readonly startAt: number;
      readonly rate: number;
      readonly total: number;
      readonly readRate: number;
      readonly readTotal: number;
      readonly graceMs: number;
    }
  /** Idle mode: report how many sockets are still open. */
  | { readonly type: 'count' }
  | { readonly type: 'close' };

export type SetupReport = { readonly conversations: number; readonly created: number; readonly failed: number; readonly failures: Record<string, number> };

export type ConnectReport = { readonly connected: number; readonly failed: number; readonly retried: number; readonly failures: Record<string, number> };

export type SendReport = {
  readonly sent: number;
  readonly acked: number;
  /** Answered with an error (frame or HTTP status), by code. */
  readonly rejected: Record<string, number>;
  readonly unanswered: number;
  readonly delivered: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly outOfOrder: number;
  /** `new_message` frames back on the sender's own socket (API.md: both participants get it). */
  readonly echoed: number;
  readonly firstSendAt: number;
  readonly lastSendAt: number;
  /** How late the tool itself was on its schedule, at worst: a large value means the tool was the limit. */
  readonly maxSendLagMs: number;
  /** Send to delivery at the recipient's socket, ms. */
  readonly latencies: Float64Array;
  /** Send to ack (or 201), ms. */
  readonly ackLatencies: Float64Array;
  /** The same two from each send's scheduled time (open loop), ms: the tool's own lag included. */
  readonly scheduledLatencies: Float64Array;
  readonly ackScheduledLatencies: Float64Array;
  /** Every send's lag, scheduled to actually sent, ms. */
  readonly sendLags: Float64Array;
  /** First deliveries with their event's key, for the per-hop breakdown. */
  readonly timed: TimedDeliveries;
  /** Close codes of sockets that closed during the run. */
  readonly disconnects: Record<string, number>;
  /** The GETs issued during the send (none without `--read-rate`). */
  readonly reads: ReadTotals;
};

export type WorkerMessage =
  | { readonly type: 'setup-done'; readonly report: SetupReport }
  | { readonly type: 'connect-done'; readonly report: ConnectReport }
  | { readonly type: 'send-done'; readonly report: SendReport }
  | { readonly type: 'count-done'; readonly open: number; readonly disconnects: Record<string, number> }
  | { readonly type: 'failed'; readonly error: string };
