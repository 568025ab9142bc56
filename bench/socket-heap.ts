/**
 * What an idle authenticated socket holds in a gateway's heap: `npm run bench:socket-heap -- --help`.
 *
 * For each system (ours: relay, projector, fan-out and one gateway; the baseline: one instance), on private
 * servers (bench/load/bench-servers.ts): the gateway process's memory before any socket, then `--sockets` idle
 * authenticated sockets from this process, a settle, its memory again, each as found, after a full GC and after
 * full GCs until V8's heap shrinks no more, and
 * where it is (bench/heap/memory-breakdown.ts: V8's heap spaces committed and used, malloc's arenas, the rest;
 * read through the inspector, `--inspect`, given by this benchmark only); then a heap snapshot with the sockets,
 * the sockets closed, a snapshot without them, and the growth between the two divided by the sockets, per kind
 * (closures, timers, Maps, NATS subscriptions, buffers, ws internals, ...) and per constructor. Memory is read
 * before any snapshot: writing one leaves its native memory, freed but resident, in the process's malloc arena.
 * The snapshots are taken by Node itself on a signal (`--heapsnapshot-signal=SIGUSR2`, given to the gateway
 * process by this benchmark only): nothing in the gateway's code is involved.
 *
 * The processes run compiled, as the image runs them (`npm run build`, then `node dist/<role>/main.js`; the
 * baseline compiled the same way), unless `--source`: under tsx, whose keepNames gives every named function
 * a `name` property (a 256-byte property store per closure a socket creates).
 */
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { WebSocket } from 'ws';
import { z } from 'zod';
import { getFreePorts } from '../stack/free-port.js';
import { byKind, diffHeapSummaries, HEAP_KINDS, summarizeHeapSnapshot, type HeapSummary } from './heap/heap-summary.js';
import { collectGarbage } from './heap/inspector.js';
import { readMemoryBreakdown, v8Committed, type MemoryBreakdown } from './heap/memory-breakdown.js';
import { startBenchServers } from './load/bench-servers.js';
import { forEachBounded, sleep } from './load/bounded-parallel.js';
import { openSocketWithRetry } from './load/open-socket.js';
import { formatBytes } from './load/resident-memory.js';
import { answers200, buildCompiledRoles, waitUntil } from './load/role-process.js';
import { startSystem, type RunningSystem, type SystemName } from './load/systems.js';
import { createTokenMinter } from './load/tokens.js';

const HELP = `npm run bench:socket-heap -- [options]

  --sockets <n>        idle authenticated sockets held against the one gateway (default 10000; at most 15000
                       from this one process and source address)
  --systems <list>     ours, baseline, or both in that order (default ours,baseline)
  --settle <s>         seconds between the last socket and the second snapshot (default 5)
  --top <n>            constructors listed per system (default 25)
  --keep <dir>         keep the snapshots there (open them in Chrome DevTools, Memory tab: "Comparison")
  --source             run the roles and the baseline from their sources under tsx (node --import tsx), as
                       npm start does; by default they are compiled first and run as the image runs them
                       (npm run build, node dist/<role>/main.js; the baseline by bench/baseline/tsconfig.build.json)
  --help`;

const { values } = parseArgs({
  strict: true,
  options: {
    sockets: { type: 'string' },
    systems: { type: 'string' },
    settle: { type: 'string' },
    top: { type: 'string' },
    keep: { type: 'string' },
    source: { type: 'boolean' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (values.help) {
  process.stdout.write(`${HELP}\n`);
  process.exit(0);
}
const parsed = z
  .object({
    sockets: z.coerce.number().int().min(1).max(15_000).default(10_000),
    systems: z
      .string()
      .default('ours,baseline')
      .transform((text) => text.split(',').map((item) => item.trim()))
      .pipe(z.array(z.enum(['ours', 'baseline'])).min(1)),
    settle: z.coerce.number().nonnegative().default(5),
    top: z.coerce.number().int().positive().default(25),
    keep: z.string().optional(),
    source: z.boolean().default(false),
  })
  .safeParse(values);
if (!parsed.success) {
  process.stderr.write(`bad arguments:\n${z.prettifyError(parsed.error)}\n\n${HELP}\n`);
  process.exit(2);
}
const options = parsed.data;
const JWT_SECRET = 'socket-heap-benchmark-secret-0123456789';
const note = (line: string): void => void process.stderr.write(`[socket-heap] ${line}\n`);
const say = (line: string): void => void process.stdout.write(`${line}\n`);

/** Signals the gateway and waits for the snapshot Node writes into `dir`; the process answers /health again once it is written. */
async function takeSnapshot(system: RunningSystem, dir: string, healthUrl: string): Promise<string> {
  const pid = system.gatewayPids[0]!;
  const known = new Set(await readdir(dir));
  process.kill(pid, 'SIGUSR2');
  let file: string | undefined;
  await waitUntil('the heap snapshot file', async () => {
    file = (await readdir(dir)).find((name) => name.endsWith('.heapsnapshot') && !known.has(name));
    return file !== undefined;
  }, { timeoutMs: 120_000 });
  // The main thread writes the whole snapshot before it serves anything again; then the size is final.
  await waitUntil('the gateway after its snapshot', () => answers200(healthUrl), { timeoutMs: 600_000 });
  const full = path.join(dir, file!);
  let size = -1;
  await waitUntil('the snapshot to be complete', async () => {
    const now = (await stat(full)).size;
    const stable = now === size;
    size = now;
    return stable;
  }, { timeoutMs: 120_000 });
  return full;
}

async function summarize(file: string): Promise<HeapSummary> {
  return summarizeHeapSnapshot(await readFile(file));
}

async function openIdleSockets(system: RunningSystem, count: number): Promise<WebSocket[]> {
  const mint = createTokenMinter(JWT_SECRET, 24 * 3600);
  const url = system.wsUrls[0]!;
  const sockets: WebSocket[] = [];
  let failed = 0;
  await forEachBounded(Array.from({ length: count }, (_, index) => 1 + index), 200, async (userId) => {
    try {
      const token = await mint(userId);
      sockets.push(
        await openSocketWithRetry(`${url}?token=${encodeURIComponent(token)}`, {
          localAddress: '127.0.0.2',
          timeoutMs: 20_000,
          attempts: 5,
          onRetry: () => undefined,
        }),
      );
    } catch {
      failed++;
    }
  });
  for (const socket of sockets) socket.on('error', () => undefined);
  if (failed > 0) note(`${failed} of ${count} sockets did not connect`);
  return sockets;
}

async function measure(name: SystemName, servers: Awaited<ReturnType<typeof startBenchServers>>, dir: string, tag: number): Promise<void> {
  const snapshotDir = await mkdtemp(path.join(dir, `${name}-`));
  const [inspectPort = 0] = await getFreePorts(1);
  note(`starting ${name}`);
  const system = await startSystem(name, {
    servers,
    instances: 1,
    jwtSecret: JWT_SECRET,
    poolSize: 10,
    tag: `heap${tag}`,
    gatewayNodeOptions: ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${snapshotDir}`, `--inspect=127.0.0.1:${inspectPort}`],
    compiled: !options.source,
  });
  const healthUrl = system.wsUrls[0]!.replace(/^ws/, 'http').replace(/\/api\/v1\/chat\/ws$/, '/health');
  const pid = system.gatewayPids[0]!;
  let sockets: WebSocket[] = [];
  try {
    await sleep(2_000);
    // Memory is read before any snapshot: writing one leaves tens of megabytes of freed native memory in the
    // process's malloc arena (84 MiB in a gateway of 20 MiB of heap), resident, which the sockets would then reuse.
    const foundBefore = await readMemoryBreakdown(pid, inspectPort);
    const collectedBefore = await collectUntilCompact(pid, inspectPort);
    note(`${name}: opening ${options.sockets} sockets`);
    sockets = await openIdleSockets(system, options.sockets);
    await sleep(options.settle * 1_000);
    const foundAfter = await readMemoryBreakdown(pid, inspectPort);
    const collectedAfter = await collectUntilCompact(pid, inspectPort);
    note(`${name}: snapshot with ${sockets.length} sockets`);
    const after = await takeSnapshot(system, snapshotDir, healthUrl);
    // The heap without the sockets: the same process once they have closed (and the gateway let go of them).
    note(`${name}: closing the sockets, then a snapshot without them`);
    const count = sockets.length;
    for (const socket of sockets) socket.terminate();
    sockets = [];
    await sleep(Math.max(5, options.settle) * 1_000);
    const before = await takeSnapshot(system, snapshotDir, healthUrl);
    note(`${name}: reading the snapshots`);
    const [was, now] = [await summarize(before), await summarize(after)];
    report(name, count, { foundBefore, foundAfter, collectedBefore, collectedAfter }, was, now);
  } finally {
    for (const socket of sockets) socket.terminate();
    await system.stop();
    if (!options.keep) await rm(snapshotDir, { recursive: true, force: true });
  }
}

/** After one full GC, and after as many as it took V8 to stop shrinking its heap. */
type Collected = { readonly first: MemoryBreakdown; readonly last: MemoryBreakdown; readonly rounds: number };

/** Most full GCs in a row; V8 has always stopped shrinking by the second or third. */
const MAX_GC_ROUNDS = 5;

/**
 * Full GCs until V8's committed heap stops shrinking. One is not always enough: a full GC compacts the
 * old space's most fragmented pages only up to a volume per collection, so after a connection storm a
 * second one can hand back megabytes more (then a third hands back nothing).
 */
async function collectUntilCompact(pid: number, inspectPort: number): Promise<Collected> {
  await collectGarbage(inspectPort);
  const first = await readMemoryBreakdown(pid, inspectPort);
  let last = first;
  let rounds = 1;
  while (rounds < MAX_GC_ROUNDS) {
    await collectGarbage(inspectPort);
    const next = await readMemoryBreakdown(pid, inspectPort);
    rounds++;
    const shrank = v8Committed(next) < v8Committed(last);
    last = next;
    if (!shrank) break;
  }
  return { first, last, rounds };
}

/** The process's memory before any socket and with them, each as found and after full GCs. */
type Resident = {
  readonly foundBefore: MemoryBreakdown;
  readonly foundAfter: MemoryBreakdown;
  readonly collectedBefore: Collected;
  readonly collectedAfter: Collected;
};

type Row = readonly [string, (memory: MemoryBreakdown) => number];

/** The lines of the breakdown: what each is, and how it is read from a `MemoryBreakdown`. */
function breakdownRows(memory: Resident): Row[] {
  const [before, after] = [memory.collectedBefore.last, memory.collectedAfter.last];
  const spaceNames = [...new Set([...before.spaces, ...after.spaces].map((space) => space.name))];
  const space = (name: string, field: 'committed' | 'used') => (m: MemoryBreakdown): number =>
    m.spaces.find((item) => item.name === name)?.[field] ?? 0;
  const spaceRows = spaceNames
    .filter((name) => [before, after].some((m) => space(name, 'committed')(m) > 0))
    .flatMap((name): Row[] => [
      [`    ${name}: committed`, space(name, 'committed')],
      [`    ${name}: used`, space(name, 'used')],
    ]);
  return [
    ['resident memory (VmRSS)', (m) => m.rss],
    ['  V8 heap, committed (resident pages)', v8Committed],
    ['    of which used', (m) => m.spaces.reduce((sum, item) => sum + item.used, 0)],
    ...spaceRows,
    ['  outside V8 heap (RSS - committed)', (m) => m.rss - v8Committed(m)],
    ['    malloc main arena ([heap])', (m) => m.mainArena],
    ['    malloc thread arenas', (m) => m.threadArenas],
    ['    other anonymous (stacks, mmaps)', (m) => m.rssAnon - v8Committed(m) - m.mainArena - m.threadArenas],
    ['    file-backed (binary, libraries)', (m) => m.rssFile],
    ['  external (V8 told of; in the above)', (m) => m.external],
    ['    of which ArrayBuffers', (m) => m.arrayBuffers],
  ];
}

function report(name: SystemName, sockets: number, rss: Resident, before: HeapSummary, after: HeapSummary): void {
  const per = (bytes: number): string => formatBytes(bytes / Math.max(1, sockets));
  const diff = diffHeapSummaries(before, after);
  const how = options.source ? 'from its sources under tsx' : 'compiled';
  say(`\n${name}: ${sockets} idle sockets on one ${name === 'ours' ? 'gateway' : 'instance'} (${how})`);
  const { foundBefore, foundAfter } = rss;
  const [collectedBefore, collectedAfter] = [rss.collectedBefore.last, rss.collectedAfter.last];
  say(`  resident memory (VmRSS) ${formatBytes(foundBefore.rss)} -> ${formatBytes(foundAfter.rss)}: ${per(foundAfter.rss - foundBefore.rss)} per socket`);
  say(
    `  the same, each after a full GC ${formatBytes(rss.collectedBefore.first.rss)} -> ${formatBytes(rss.collectedAfter.first.rss)}: ` +
      `${per(rss.collectedAfter.first.rss - rss.collectedBefore.first.rss)} per socket`,
  );
  say(
    `  the same, each after full GCs until V8's heap shrinks no more (${rss.collectedBefore.rounds} and ${rss.collectedAfter.rounds} GCs) ` +
      `${formatBytes(collectedBefore.rss)} -> ${formatBytes(collectedAfter.rss)}: ${per(collectedAfter.rss - collectedBefore.rss)} per socket`,
  );
  say(`  where it is, after those GCs (malloc thread arenas: ${collectedBefore.threadArenaCount} -> ${collectedAfter.threadArenaCount}):`);
  say(`  ${''.padEnd(38)}   no socket  with sockets  per socket | as found: per socket`);
  for (const [label, read] of breakdownRows(rss)) {
    say(
      `  ${label.padEnd(38)} ${formatBytes(read(collectedBefore)).padStart(11)} ${formatBytes(read(collectedAfter)).padStart(13)} ` +
        `${per(read(collectedAfter) - read(collectedBefore)).padStart(11)} | ${per(read(foundAfter) - read(foundBefore)).padStart(10)}`,
    );
  }
  say(
    `  heap (self sizes of every object), once the sockets closed -> with them ${formatBytes(before.totalBytes)} -> ` +
      `${formatBytes(after.totalBytes)}: ${per(after.totalBytes - before.totalBytes)} per socket`,
  );
  say('  per socket, by kind:            bytes   objects');
  const kinds = byKind(diff);
  for (const kind of HEAP_KINDS) {
    const { count, selfBytes } = kinds.get(kind)!;
    say(`    ${kind.padEnd(26)} ${per(selfBytes).padStart(10)}   ${(count / Math.max(1, sockets)).toFixed(2).padStart(7)}`);
  }
  say(`  per socket, the ${options.top} largest growths by type and constructor (stores: the property and element`);
  say('  stores and hash tables those objects own, also counted on their own lines above and below):');
  say('          self      stores   objects');
  const withStores = [...diff].sort((a, b) => b.selfBytes + b.storeBytes - (a.selfBytes + a.storeBytes));
  for (const group of withStores.slice(0, options.top)) {
    say(
      `    ${per(group.selfBytes).padStart(10)}  ${per(group.storeBytes).padStart(10)}   ${(group.count / Math.max(1, sockets)).toFixed(2).padStart(7)}   ` +
        `${group.type} ${group.name.slice(0, 70)}`,
    );
  }
}

if (!options.source) {
  note('compiling the roles and the baseline (npm run build; bench/baseline/tsconfig.build.json)');
  await buildCompiledRoles();
}
note(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((value) => value.toFixed(2)).join(' ')}`);
const dir = options.keep ? path.resolve(options.keep) : await mkdtemp(path.join(tmpdir(), 'matcha-heap-'));
await mkdir(dir, { recursive: true });
const servers = await startBenchServers();
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => process.exit(130));
try {
  let tag = 0;
  for (const name of options.systems) await measure(name, servers, dir, ++tag);
} finally {
  await servers.close();
  if (!options.keep) await rm(dir, { recursive: true, force: true });
}
