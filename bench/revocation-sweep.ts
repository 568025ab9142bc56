/**
 * Cost of the revocation sweep (src/gateway/auth/revocation-sweep.ts) on one gateway, against a private
 * redis-server it starts itself.
 *
 *   npm run bench:revocation-sweep [-- --sockets 15000 --passes 20 --interval-ms 10000]
 *
 * `--sockets` open sockets, each with its own token (the worst case: no two sockets share a revocation key),
 * one in a thousand of them revoked before each pass. The sweep runs `--passes` times back to back; each
 * pass is timed (wall clock and the process's CPU) and its Redis round trips counted. The cost per second of
 * a gateway is a pass divided by the interval (WS_REVOCATION_CHECK_MS, 10 s by default). The sockets are
 * the sweep's view of them (key and revoke); the sockets themselves cost the sweep nothing more than the
 * iteration measured here.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startRevocationSweep, type RevocableSocket } from '../src/gateway/auth/revocation-sweep.js';
import { createRedis } from '../src/shared/redis.js';
import { getFreePort } from '../stack/free-port.js';
import { startRedisServer } from '../stack/redis-server.js';

const { values: args } = parseArgs({
  options: {
    sockets: { type: 'string', default: '15000' },
    passes: { type: 'string', default: '20' },
    'interval-ms': { type: 'string', default: '10000' },
  },
});
const socketCount = Number(args.sockets);
const passes = Number(args.passes);
const intervalMs = Number(args['interval-ms']);

const dir = await mkdtemp(path.join(tmpdir(), 'matcha-bench-sweep-'));
const server = await startRedisServer({ port: await getFreePort(), dir });
const redis = createRedis(server.url);

type BenchSocket = RevocableSocket & { revokedKey: string | null; closed: boolean };
const sockets: BenchSocket[] = Array.from({ length: socketCount }, (_, i) => {
  const socket: BenchSocket = {
    revokedKey: `blacklist:${createHash('sha256').update(`token-${i}`).digest('hex')}`,
    closed: false,
    get revocationKey() {
      return socket.closed ? null : socket.revokedKey;
    },
    revoke() {
      socket.closed = true;
    },
  };
  return socket;
});

const percentile = (sorted: readonly number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;

try {
  let roundTrips = 0;
  let revoked = 0;
  const sweep = startRevocationSweep({
    redis,
    sockets: () => sockets,
    intervalMs: 3_600_000, // passes are run by hand below
    logger: pino({ level: 'silent' }),
    onPass: (pass) => {
      roundTrips += pass.roundTrips;
    },
  });
  await sweep.sweep(); // warm up: connections, JIT
  roundTrips = 0;
  const wallMs: number[] = [];
  const cpuMs: number[] = [];
  for (let pass = 0; pass < passes; pass++) {
    // A few logouts between passes: one socket in a thousand.
    for (let i = pass; i < socketCount; i += 1_000) await redis.set(sockets[i]!.revokedKey!, '1', 'EX', 600);
    const cpu = process.cpuUsage();
    const started = performance.now();
    revoked += await sweep.sweep();
    wallMs.push(performance.now() - started);
    const used = process.cpuUsage(cpu);
    cpuMs.push((used.user + used.system) / 1_000);
  }
  sweep.stop();
  const sortedWall = [...wallMs].sort((a, b) => a - b);
  const sortedCpu = [...cpuMs].sort((a, b) => a - b);
  const cpuPerPass = cpuMs.reduce((sum, ms) => sum + ms, 0) / passes;
  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  console.log(`${socketCount} sockets, ${passes} passes, ${revoked} sockets revoked in all`);
  console.log(`per pass: wall p50 ${percentile(sortedWall, 50).toFixed(1)} ms, p99 ${percentile(sortedWall, 99).toFixed(1)} ms; ` +
    `gateway CPU p50 ${percentile(sortedCpu, 50).toFixed(1)} ms, mean ${cpuPerPass.toFixed(1)} ms; Redis round trips ${roundTrips / passes}`);
  console.log(`at one pass every ${intervalMs / 1_000} s: ${((roundTrips / passes) * 1_000 / intervalMs).toFixed(2)} Redis round trips/s, ` +
    `${((socketCount * 1_000) / intervalMs).toFixed(0)} keys checked/s, gateway CPU ${((cpuPerPass / intervalMs) * 100).toFixed(3)} % of a core`);
} finally {
  await redis.quit();
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
