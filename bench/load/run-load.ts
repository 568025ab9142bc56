import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { mergeCounts, sleep } from './bounded-parallel.js';
import { nowMs } from './content-tag.js';
import type { LoadOptions } from './load-options.js';
import { hopBreakdown, mergeHopRecords, type HopBreakdown } from './hop-breakdown.js';
import { summarize, type LatencySummary } from './percentiles.js';
import type { HopRecord } from '../../src/shared/hop-times.js';
import { READ_KINDS, type ReadKind } from './reader.js';
import { totalCpuMs, treeCpuMs } from './process-cpu.js';
import { totalResidentBytes } from './resident-memory.js';
import type { ConnectReport, CoordinatorMessage, SendReport, SetupReport, WorkerAssignment, WorkerMessage } from './worker-protocol.js';

/**
 * A process may open 20,000 files here; a worker keeps well below that (sockets, HTTP, IPC, tsx). And each
 * worker's source address has about 28,000 ephemeral ports, which the sockets of the previous system's run
 * still hold for a minute (TIME_WAIT): two runs of 10,000 per address fit, two of 15,000 did not.
 */
export const MAX_SOCKETS_PER_WORKER = 10_000;
const WORKER_ENTRY = fileURLToPath(new URL('./worker.ts', import.meta.url));
const TOKEN_VALIDITY_SECONDS = 24 * 3600;
/** Time after an idle connect for the gateway's memory to settle (buffers allocated on the first frames). */
const MEMORY_SETTLE_MS = 3_000;

export type LoadReport = {
  readonly mode: 'send' | 'idle';
  readonly via: 'ws' | 'rest';
  readonly users: number;
  readonly gateways: number;
  readonly workers: number;
  readonly rate: number;
  readonly seconds: number;
  readonly setup: SetupReport & { readonly ms: number };
  readonly connect: ConnectReport & { readonly ms: number };
  /** The workers' counts added up, with the latencies summarised. */
  readonly send?: Pick<
    SendReport,
    'sent' | 'acked' | 'rejected' | 'unanswered' | 'delivered' | 'lost' | 'duplicated' | 'outOfOrder' | 'echoed' | 'maxSendLagMs'
  > & {
    readonly achievedRate: number;
    /** From the actual send (the time in the content) to the recipient's first delivery. */
    readonly latencyMs: LatencySummary;
    readonly ackLatencyMs: LatencySummary;
    /** The same from each send's scheduled time (open loop): what a client due to send then would see. */
    readonly fromScheduleMs: LatencySummary;
    readonly ackFromScheduleMs: LatencySummary;
    /** The tool's own lag over every send: scheduled to actually sent (`maxSendLagMs` is its max). */
    readonly sendLagMs: LatencySummary;
    /** With `--hop-times`: where each delivered message's time went, hop by hop. */
    readonly hops?: HopBreakdown;
    readonly disconnects: Record<string, number>;
    /** CPU time of `--server-pids` from the start of the send to the end of the grace, ms. */
    readonly serverCpuMs?: number;
    /** The same for `--infra-pids` and their child processes (Postgres, NATS, Redis), ms. */
    readonly infraCpuMs?: number;
    /** The same for the load tool itself (this process and its workers), ms. */
    readonly loadToolCpuMs?: number;
    /** With `--read-rate`: the GETs issued during the send. */
    readonly reads?: {
      readonly rate: number;
      readonly sent: number;
      /** By HTTP status (`200`, `503`, ...) or transport failure. */
      readonly answers: Record<string, number>;
      /** Every answered GET, issue to answer. */
      readonly latencyMs: LatencySummary;
      readonly byKindMs: Record<ReadKind, LatencySummary>;
    };
  };
  readonly idle?: {
    readonly open: number;
    readonly disconnects: Record<string, number>;
    readonly memory?: {
      readonly beforeBytes: number;
      readonly connectedBytes: number;
      readonly endBytes: number;
      /** (end - before) / sockets connected. */
      readonly perSocketBytes: number;
    };
  };
};

type Worker = {
  readonly child: ChildProcess;
  readonly pairs: number;
  ask<T extends WorkerMessage['type']>(message: CoordinatorMessage, answer: T): Promise<Extract<WorkerMessage, { type: T }>>;
};

function startWorker(index: number, pairs: number): Worker {
  const child = fork(WORKER_ENTRY, [], {
    execArgv: ['--import', 'tsx'],
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let exited: Error | undefined;
  child.once('exit', (code, signal) => {
    exited = new Error(`load worker ${index} exited (${signal ?? `code ${code}`})`);
  });
  return {
    child,
    pairs,
    ask(message, answer) {
      return new Promise((resolve, reject) => {
        if (exited) return reject(exited);
        const onMessage = (reply: WorkerMessage): void => {
          if (reply.type !== answer && reply.type !== 'failed') return;
          child.off('message', onMessage);
          child.off('exit', onExit);
          if (reply.type === 'failed') reject(new Error(`load worker ${index}: ${reply.error}`));
          else resolve(reply as Extract<WorkerMessage, { type: typeof answer }>);
        };
        const onExit = (): void => {
          child.off('message', onMessage);
          reject(exited ?? new Error(`load worker ${index} exited`));
        };
        child.on('message', onMessage);
        child.once('exit', onExit);
        child.send(message);
      });
    },
  };
}

/** Splits `total` into integer parts proportional to `weights` (largest remainders), summing to `total`. */
export function apportion(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  const exact = weights.map((weight) => (total * weight) / sum);
  const parts = exact.map(Math.floor);
  const order = exact.map((value, index) => ({ index, rest: value - Math.floor(value) })).sort((a, b) => b.rest - a.rest);
  const remainder = total - parts.reduce((a, b) => a + b, 0);
  for (let k = 0; k < remainder; k++) {
    const target = order[k % order.length];
    if (target) parts[target.index] = (parts[target.index] ?? 0) + 1;
  }
  return parts;
}

const concat = (arrays: readonly Float64Array[]): Float64Array => {
  const out = new Float64Array(arrays.reduce((sum, array) => sum + array.length, 0));
  let offset = 0;
  for (const array of arrays) {
    out.set(array, offset);
    offset += array.length;
  }
  return out;
};

/** Every role's hop-times records (GET /hop-times), merged per message. */
async function fetchHopRecords(urls: readonly string[]): Promise<Map<string, HopRecord>> {
  const sources = await Promise.all(
    urls.map(async (url) => {
      const response = await fetch(url, { signal: AbortSignal.timeout(30_000) });
      if (!response.ok) throw new Error(`${url} answered ${response.status}: is HOP_TIMES_CAPACITY set on that role?`);
      return ((await response.json()) as { records: Record<string, HopRecord> }).records;
    }),
  );
  return mergeHopRecords(sources);
}

/**
 * Runs one load: forks the workers, then setup, connect, and send (or hold, when idle), each phase on every
 * worker at once, the next only when all finished, so that sends start when every socket is connected.
 * `progress` receives human-readable lines as the phases end.
 */
export async function runLoad(options: LoadOptions, progress: (line: string) => void): Promise<LoadReport> {
  const pairs = Math.floor(options.users / 2);
  const workerCount = Math.min(pairs, Math.max(options.workers, Math.ceil((2 * pairs) / MAX_SOCKETS_PER_WORKER)));
  if (workerCount > 253) throw new Error('at most 253 workers (source addresses 127.0.0.2 .. 127.0.0.254)');
  const runId = randomBytes(4).toString('hex');
  const shares = apportion(pairs, Array.from({ length: workerCount }, () => 1));
  const workers = shares.map((share, index) => startWorker(index, share));
  const stopWorkers = (): void => {
    for (const worker of workers) {
      if (worker.child.connected) worker.child.send({ type: 'close' } satisfies CoordinatorMessage);
    }
  };

  try {
    let firstPair = 0;
    const assignments = workers.map((worker, index): WorkerAssignment => {
      const assignment: WorkerAssignment = {
        index,
        runId,
        localAddress: `127.0.0.${2 + index}`,
        gateways: options.gateways,
        jwtSecret: options.jwtSecret,
        firstUserId: options.firstUserId,
        firstPair,
        pairs: worker.pairs,
        idle: options.idle,
        via: options.via,
        pick: options.pick,
        connectConcurrency: options.connectConcurrency,
        setupConcurrency: 32,
        connectTimeoutMs: 20_000,
        connectAttempts: 5,
        tokenValiditySeconds: TOKEN_VALIDITY_SECONDS,
      };
      firstPair += worker.pairs;
      return assignment;
    });

    let started = performance.now();
    const setups = await Promise.all(workers.map((worker, index) => worker.ask({ type: 'setup', assignment: assignments[index] as WorkerAssignment }, 'setup-done')));
    const setup = {
      conversations: 0,
      created: 0,
      failed: 0,
      failures: {} as Record<string, number>,
      ms: Math.round(performance.now() - started),
    };
    for (const { report } of setups) {
      setup.conversations += report.conversations;
      setup.created += report.created;
      setup.failed += report.failed;
      mergeCounts(setup.failures, report.failures);
    }
    if (!options.idle) {
      progress(`setup: ${setup.conversations} conversations (${setup.created} new, ${setup.failed} failed) in ${(setup.ms / 1000).toFixed(1)} s`);
    }

    const memoryBefore = options.idle && options.memory.length > 0 ? await totalResidentBytes(options.memory) : undefined;
    started = performance.now();
    const connects = await Promise.all(workers.map((worker) => worker.ask({ type: 'connect' }, 'connect-done')));
    const connect = { connected: 0, failed: 0, retried: 0, failures: {} as Record<string, number>, ms: Math.round(performance.now() - started) };
    for (const { report } of connects) {
      connect.connected += report.connected;
      connect.failed += report.failed;
      connect.retried += report.retried;
      mergeCounts(connect.failures, report.failures);
    }
    progress(
      `connect: ${connect.connected}/${2 * pairs} sockets over ${options.gateways.length} gateway(s) from ${workerCount} worker(s) in ${(connect.ms / 1000).toFixed(1)} s` +
        (connect.failed > 0 ? `, ${connect.failed} failed: ${JSON.stringify(connect.failures)}` : '') +
        (connect.retried > 0 ? `, ${connect.retried} retries` : ''),
    );

    const base = {
      via: options.via,
      users: 2 * pairs,
      gateways: options.gateways.length,
      workers: workerCount,
      rate: options.rate,
      seconds: options.seconds,
      setup,
      connect,
    };

    if (options.idle) {
      await sleep(MEMORY_SETTLE_MS);
      const connectedBytes = memoryBefore === undefined ? undefined : await totalResidentBytes(options.memory);
      progress(`holding ${connect.connected} sockets for ${options.seconds} s`);
      await sleep(options.seconds * 1_000);
      const counts = await Promise.all(workers.map((worker) => worker.ask({ type: 'count' }, 'count-done')));
      const endBytes = memoryBefore === undefined ? undefined : await totalResidentBytes(options.memory);
      const disconnects: Record<string, number> = {};
      for (const count of counts) mergeCounts(disconnects, count.disconnects);
      return {
        mode: 'idle',
        ...base,
        idle: {
          open: counts.reduce((sum, count) => sum + count.open, 0),
          disconnects,
          ...(memoryBefore !== undefined &&
            connectedBytes !== undefined &&
            endBytes !== undefined && {
              memory: {
                beforeBytes: memoryBefore,
                connectedBytes,
                endBytes,
                perSocketBytes: connect.connected > 0 ? (endBytes - memoryBefore) / connect.connected : Number.NaN,
              },
            }),
        },
      };
    }

    const total = Math.round(options.rate * options.seconds);
    const totals = apportion(total, workers.map((worker) => worker.pairs));
    const readTotals = apportion(Math.round(options.readRate * options.seconds), workers.map((worker) => worker.pairs));
    // Every worker starts on the same clock tick, shortly after the order is out.
    const startAt = nowMs() + 500;
    progress(
      `sending ${total} messages at ${options.rate}/s for ${options.seconds} s via ${options.via}` +
        (options.readRate > 0 ? `, reading at ${options.readRate} GETs/s` : ''),
    );
    const cpuBefore = options.serverPids.length > 0 ? await totalCpuMs(options.serverPids) : undefined;
    // Postgres backends come and go with connections: whole trees, exited processes included.
    const infraBefore = options.infraPids.length > 0 ? await treeCpuMs(options.infraPids) : undefined;
    const ownBefore = await treeCpuMs([process.pid]);
    const sends = await Promise.all(
      workers.map((worker, index) =>
        worker.ask(
          {
            type: 'send',
            startAt,
            rate: (options.rate * worker.pairs) / pairs,
            total: totals[index] ?? 0,
            readRate: (options.readRate * worker.pairs) / pairs,
            readTotal: readTotals[index] ?? 0,
            graceMs: options.graceSeconds * 1_000,
          },
          'send-done',
        ),
      ),
    );
    const serverCpuMs = cpuBefore === undefined ? undefined : (await totalCpuMs(options.serverPids)) - cpuBefore;
    const infraCpuMs = infraBefore === undefined ? undefined : (await treeCpuMs(options.infraPids)) - infraBefore;
    const loadToolCpuMs = (await treeCpuMs([process.pid])) - ownBefore;
    // A role that does not answer costs the breakdown, not the run's other figures.
    const hopRecords =
      options.hopTimes.length > 0
        ? await fetchHopRecords(options.hopTimes).catch((error: unknown) => {
            progress(`no per-hop breakdown: ${error instanceof Error ? error.message : String(error)}`);
            return undefined;
          })
        : undefined;
    const reports: SendReport[] = sends.map((send) => send.report);
    const sum = (pick: (report: SendReport) => number): number => reports.reduce((acc, report) => acc + pick(report), 0);
    const rejected: Record<string, number> = {};
    const disconnects: Record<string, number> = {};
    const readAnswers: Record<string, number> = {};
    for (const report of reports) {
      mergeCounts(rejected, report.rejected);
      mergeCounts(disconnects, report.disconnects);
      mergeCounts(readAnswers, report.reads.answers);
    }
    const readLatencies = (kind: ReadKind): Float64Array => concat(reports.map((report) => report.reads.latencies[kind]));
    const firstSendAt = Math.min(...reports.map((report) => report.firstSendAt).filter((at) => !Number.isNaN(at)));
    const lastSendAt = Math.max(...reports.map((report) => report.lastSendAt).filter((at) => !Number.isNaN(at)));
    const sent = sum((report) => report.sent);
    // The last send is due one interval before the end of the window: count the window, not the span.
    const spanSeconds = Math.max(options.seconds, (lastSendAt - firstSendAt) / 1_000 + 1 / options.rate);
    return {
      mode: 'send',
      ...base,
      send: {
        sent,
        acked: sum((report) => report.acked),
        rejected,
        unanswered: sum((report) => report.unanswered),
        delivered: sum((report) => report.delivered),
        lost: sum((report) => report.lost),
        duplicated: sum((report) => report.duplicated),
        outOfOrder: sum((report) => report.outOfOrder),
        echoed: sum((report) => report.echoed),
        achievedRate: Number.isFinite(spanSeconds) && sent > 0 ? sent / spanSeconds : 0,
        maxSendLagMs: Math.max(0, ...reports.map((report) => report.maxSendLagMs)),
        latencyMs: summarize(concat(reports.map((report) => report.latencies))),
        ackLatencyMs: summarize(concat(reports.map((report) => report.ackLatencies))),
        fromScheduleMs: summarize(concat(reports.map((report) => report.scheduledLatencies))),
        ackFromScheduleMs: summarize(concat(reports.map((report) => report.ackScheduledLatencies))),
        sendLagMs: summarize(concat(reports.map((report) => report.sendLags))),
        ...(hopRecords && { hops: hopBreakdown(reports.map((report) => report.timed), hopRecords) }),
        disconnects,
        ...(serverCpuMs !== undefined && { serverCpuMs }),
        ...(infraCpuMs !== undefined && { infraCpuMs }),
        loadToolCpuMs,
        ...(options.readRate > 0 && {
          reads: {
            rate: options.readRate,
            sent: sum((report) => report.reads.sent),
            answers: readAnswers,
            latencyMs: summarize(concat(READ_KINDS.map(readLatencies))),
            byKindMs: {
              messages: summarize(readLatencies('messages')),
              conversation: summarize(readLatencies('conversation')),
              list: summarize(readLatencies('list')),
            },
          },
        }),
      },
    };
  } finally {
    stopWorkers();
    await Promise.all(
      workers.map(
        (worker) =>
          new Promise<void>((resolve) => {
            if (worker.child.exitCode !== null || worker.child.signalCode !== null) return resolve();
            const timer = setTimeout(() => worker.child.kill('SIGKILL'), 5_000);
            worker.child.once('exit', () => {
              clearTimeout(timer);
              resolve();
            });
          }),
      ),
    );
  }
}
