/**
 * `npm run bench:compare -- --help`: our stack against the baseline (bench/baseline) on private servers,
 * one system at a time, with the same load (bench/load/main.ts).
 */
import { writeFile } from 'node:fs/promises';
import { cpus, loadavg, totalmem } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { startBenchServers, type BenchServers } from './bench-servers.js';
import { formatIdle, formatStep, rateRows, sideBySide } from './compare-report.js';
import { findMaxRate, type Step } from './find-max.js';
import { formatHopBreakdown } from './hop-breakdown.js';
import { MAX_SOCKETS_PER_WORKER, type LoadReport } from './run-load.js';
import { withDescendants } from './process-cpu.js';
import { runLoadProcess } from './run-load-process.js';
import { startSystem, type RunningSystem, type SystemName } from './systems.js';

const HELP = `npm run bench:compare -- [options]

Starts private Postgres (durable), nats-server and redis-server on free ports, then each system in turn
(our stack: relay, projector, fan-out and G gateways; the baseline: B instances of bench/baseline), runs
the load tool against it, stops it, and prints the two side by side with ratios (ours / baseline).

Modes (one per run; default: a fixed rate):
  (default)                 --rate/--users/--seconds against each system: latency, lost, duplicated
  --find-max                highest rate with p99 < 100 ms, nothing lost, and the rate achieved, per system
                            (doubling from --start-rate, then bisecting; each step --seconds long)
  --idle-sockets <n,n,...>  for each count: one gateway (instance) freshly started, that many idle sockets
                            held --seconds, its resident memory before and after, per socket
  --spread-sockets <n>      n sockets over --gateways gateways, a short send at --rate (default 100/s):
                            every message must reach its recipient

Options:
  --rate <r>                messages per second in total (default 1000; 100 with --spread-sockets)
  --users <n>               users, two per conversation (default 1000)
  --seconds <s>             send (or hold) length (default 10)
  --via ws|rest             how messages are sent (default ws)
  --read-rate <r>           meanwhile, GETs per second against ours (messages, conversation, list in turn;
                            the baseline has no GET routes): their latency and 503s (default 0: none)
  --gateways <g>            our gateway processes (default 1)
  --baseline-instances <b>  baseline processes (default: as many as --gateways)
  --systems <list>          which systems, in order (default ours,baseline)
  --workers <w>             load tool worker processes (default: 1 per ${MAX_SOCKETS_PER_WORKER} sockets)
  --pool-size <n>           Postgres pool of each gateway and baseline instance (default 10)
  --start-rate <r>          first step of --find-max (default 250)
  --max-p99 <ms>            p99 bound of a passing --find-max step (default 100)
  --max-rate <r>            highest step of --find-max (default 32000)
  --grace <s>               how long deliveries may still arrive after the last send (default 5)
  --role-env <K=V,...>      extra environment of our roles, e.g. SEND_BATCHES_IN_FLIGHT=2 (tuning runs)
  --cpu-prof <dir>          every role and baseline process writes a V8 CPU profile of its run there
  --without-hops            fixed rate: our roles keep no per-hop times (HOP_TIMES_CAPACITY=0), so no
                            per-hop breakdown; to see what keeping them costs
  --out <file>              also write every report as JSON to this file
  --help`;

const positiveInt = z.coerce.number().int().positive();
const schema = z.object({
  rate: z.coerce.number().positive().optional(),
  users: positiveInt.min(2).default(1000),
  seconds: z.coerce.number().positive().default(10),
  'read-rate': z.coerce.number().nonnegative().default(0),
  via: z.enum(['ws', 'rest']).default('ws'),
  gateways: positiveInt.max(50).default(1),
  'baseline-instances': positiveInt.max(50).optional(),
  systems: z
    .string()
    .default('ours,baseline')
    .transform((text) => text.split(',').map((item) => item.trim()))
    .pipe(z.array(z.enum(['ours', 'baseline'])).min(1)),
  workers: positiveInt.optional(),
  'pool-size': positiveInt.default(10),
  'find-max': z.boolean().default(false),
  'start-rate': z.coerce.number().positive().default(250),
  'max-p99': z.coerce.number().positive().default(100),
  'max-rate': z.coerce.number().positive().default(32_000),
  'idle-sockets': z
    .string()
    .transform((text) => text.split(',').map((item) => Number(item.trim())))
    .pipe(z.array(z.number().int().min(2)).min(1))
    .optional(),
  'spread-sockets': positiveInt.min(2).optional(),
  grace: z.coerce.number().nonnegative().default(5),
  'role-env': z
    .string()
    .transform((text) => text.split(',').filter((item) => item.trim() !== ''))
    .pipe(z.array(z.string().regex(/^[A-Z][A-Z0-9_]*=[^,]*$/, 'KEY=VALUE')))
    .transform((items) => Object.fromEntries(items.map((item) => [item.slice(0, item.indexOf('=')), item.slice(item.indexOf('=') + 1)])))
    .optional(),
  'cpu-prof': z.string().optional(),
  'without-hops': z.boolean().default(false),
  out: z.string().optional(),
});

const { values } = parseArgs({
  strict: true,
  options: {
    rate: { type: 'string' },
    users: { type: 'string' },
    seconds: { type: 'string' },
    'read-rate': { type: 'string' },
    via: { type: 'string' },
    gateways: { type: 'string' },
    'baseline-instances': { type: 'string' },
    systems: { type: 'string' },
    workers: { type: 'string' },
    'pool-size': { type: 'string' },
    'find-max': { type: 'boolean' },
    'start-rate': { type: 'string' },
    'max-p99': { type: 'string' },
    'max-rate': { type: 'string' },
    'idle-sockets': { type: 'string' },
    'spread-sockets': { type: 'string' },
    grace: { type: 'string' },
    'role-env': { type: 'string' },
    'cpu-prof': { type: 'string' },
    'without-hops': { type: 'boolean' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const parsed = schema.safeParse(values);
if (!parsed.success) {
  process.stderr.write(`bad arguments:\n${z.prettifyError(parsed.error)}\n\n${HELP}\n`);
  process.exit(2);
}
const options = parsed.data;
const JWT_SECRET = 'load-benchmark-secret-0123456789abcdef';
const say = (line: string): void => void process.stdout.write(`${line}\n`);
const note = (line: string): void => void process.stderr.write(`[compare] ${line}\n`);

note(`machine: ${machine()}`);
const servers: BenchServers = await startBenchServers();
let running: RunningSystem | undefined;
let starts = 0;
// Ctrl-C: exit handlers (stack/kill-on-exit.ts) kill every process we started.
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));

async function withSystem<T>(
  name: SystemName,
  instances: number,
  work: (system: RunningSystem) => Promise<T>,
  extra: { readonly hopTimesCapacity?: number } = {},
): Promise<T> {
  note(`starting ${name} (${instances} ${name === 'ours' ? 'gateway(s)' : 'instance(s)'})`);
  running = await startSystem(name, {
    servers,
    instances,
    jwtSecret: JWT_SECRET,
    poolSize: options['pool-size'],
    tag: String(++starts),
    ...(options['role-env'] && { roleEnv: options['role-env'] }),
    cpuProfileDir: options['cpu-prof'] && path.resolve(options['cpu-prof']),
    ...extra,
  });
  try {
    return await work(running);
  } finally {
    note(`stopping ${name}`);
    await running.stop();
    running = undefined;
  }
}

/** Postgres, NATS and Redis: the processes this comparison started that are not a system's. */
const infraPids = (await withDescendants([process.pid])).filter((pid) => pid !== process.pid);

/** One load run against `system`; user ids start at `firstUserId` (fresh users keep runs apart). */
function load(system: RunningSystem, args: { users: number; rate: number; seconds: number; firstUserId: number; idle?: boolean }): Promise<LoadReport> {
  const workers = options.workers ?? Math.ceil(args.users / MAX_SOCKETS_PER_WORKER);
  return runLoadProcess([
    '--ws', system.wsUrls.join(','),
    '--jwt-secret', JWT_SECRET,
    '--users', String(args.users),
    '--rate', String(args.rate),
    '--seconds', String(args.seconds),
    '--via', options.via,
    ...(system.name === 'ours' && options['read-rate'] > 0 ? ['--read-rate', String(options['read-rate'])] : []),
    '--workers', String(workers),
    '--first-user-id', String(args.firstUserId),
    '--grace', String(options.grace),
    '--server-pids', system.pids.join(','),
    '--infra-pids', infraPids.join(','),
    ...(system.hopTimesUrls.length > 0 ? ['--hop-times', system.hopTimesUrls.join(',')] : []),
    ...(args.idle ? ['--idle', '--gateway-pid', system.gatewayPids.join(',')] : []),
  ]);
}

const baselineInstances = options['baseline-instances'] ?? options.gateways;
const instancesOf = (name: SystemName): number => (name === 'ours' ? options.gateways : baselineInstances);
const results: Record<string, unknown> = { options, machine: machine() };

function machine(): string {
  return `${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB, load average ${loadavg().map((value) => value.toFixed(2)).join(' ')}`;
}

try {
  if (options['idle-sockets']) {
    const all: Record<number, Partial<Record<SystemName, LoadReport>>> = {};
    for (const count of options['idle-sockets']) {
      const reports: Partial<Record<SystemName, LoadReport>> = {};
      for (const name of options.systems) {
        reports[name] = await withSystem(name, 1, (system) => load(system, { users: count, rate: 1, seconds: options.seconds, firstUserId: 1, idle: true }));
      }
      all[count] = reports;
      say(formatIdle(count, reports));
    }
    results['idle'] = all;
  } else if (options['spread-sockets']) {
    const users = options['spread-sockets'];
    const rate = options.rate ?? 100;
    const reports: Partial<Record<SystemName, LoadReport>> = {};
    for (const name of options.systems) {
      reports[name] = await withSystem(name, instancesOf(name), (system) => load(system, { users, rate, seconds: options.seconds, firstUserId: 1 }));
      const send = reports[name]?.send;
      note(`${name}: ${reports[name]?.connect.connected} sockets connected, lost ${send?.lost}, delivered ${send?.delivered}/${send?.acked}`);
    }
    say(`${users} sockets over ${options.gateways} gateway(s) (baseline: ${baselineInstances} instance(s)), ${rate}/s for ${options.seconds} s via ${options.via}\n`);
    say(sideBySide(rateRows(reports)));
    for (const [name, report] of Object.entries(reports)) {
      say(`${name}: ${report.send?.lost === 0 && report.connect.failed === 0 && report.send.delivered === report.send.acked ? 'OK, nothing lost' : 'NOT OK'}`);
    }
    results['spread'] = reports;
  } else if (options['find-max']) {
    const found: Partial<Record<SystemName, { best: number | null; steps: readonly Step[] }>> = {};
    for (const name of options.systems) {
      let step = 0;
      found[name] = await withSystem(name, instancesOf(name), (system) =>
        findMaxRate(
          async (rate) => {
            const report = await load(system, { users: options.users, rate, seconds: options.seconds, firstUserId: 1 + step++ * options.users });
            await system.settle();
            return report;
          },
          { start: options['start-rate'], ceiling: options['max-rate'], maxP99Ms: options['max-p99'], onStep: (result) => note(formatStep(name, result)) },
        ),
      );
    }
    say(`highest sustained rate (p99 < ${options['max-p99']} ms, nothing lost, rate achieved), ${options.users} users, ${options.seconds} s steps via ${options.via}`);
    for (const [name, result] of Object.entries(found)) {
      say(`  ${name.padEnd(8)} ${result.best ?? 'none'} msg/s   steps: ${result.steps.map((s) => `${s.rate}${s.passed ? '✓' : '✗'}`).join(' ')}`);
    }
    const ours = found.ours?.best;
    const baseline = found.baseline?.best;
    if (ours && baseline) say(`  ours/baseline ${(ours / baseline).toFixed(2)}x`);
    results['findMax'] = Object.fromEntries(
      Object.entries(found).map(([name, result]) => [name, { best: result.best, steps: result.steps.map((s) => ({ rate: s.rate, passed: s.passed, why: s.why, report: s.report })) }]),
    );
  } else {
    const rate = options.rate ?? 1000;
    const reports: Partial<Record<SystemName, LoadReport>> = {};
    // Room for every message of the run, so that none is forgotten before the load tool asks.
    const hopTimesCapacity = options['without-hops'] ? 0 : Math.min(1_000_000, Math.ceil(rate * options.seconds * 1.2) + 1_000);
    for (const name of options.systems) {
      reports[name] = await withSystem(
        name,
        instancesOf(name),
        (system) => load(system, { users: options.users, rate, seconds: options.seconds, firstUserId: 1 }),
        { hopTimesCapacity },
      );
    }
    say(`${options.users} users, ${rate} msg/s for ${options.seconds} s via ${options.via}; ours: ${options.gateways} gateway(s), baseline: ${baselineInstances} instance(s)\n`);
    say(sideBySide(rateRows(reports)));
    const hops = reports.ours?.send?.hops;
    if (hops) say(`\nours, ${formatHopBreakdown(hops)}`);
    results['rate'] = reports;
  }
  results['machineAfter'] = machine();
  if (options.out) await writeFile(options.out, `${JSON.stringify(results, null, 2)}\n`);
} finally {
  await running?.stop();
  await servers.close();
}
