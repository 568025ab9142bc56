/**
 * Cost of presence (src/gateway/presence/) for one gateway's idle sockets, against a private redis-server it
 * starts itself, compared with the socket leases alone as they were before presence.
 *
 *   npm run bench:presence [-- --sockets 15000 --minutes 5]
 *
 * `--sockets` sockets, one per user, are opened (leases taken, presence observed), then `--minutes` of a
 * gateway's life are run on a simulated clock, one second per step: the lease renewal every third of the
 * lease's TTL and, with presence, the sweep every second (each online user is looked at again once per lease
 * TTL). Measured over those minutes: Redis commands by name (INFO commandstats counts those run inside
 * scripts too), the scripts and pipelines sent (round trips), the gateway process's CPU and redis-server's.
 * Idle sockets cause no transition, so no announcement (a Postgres read of the partners) runs here: the
 * partner lookup is answered empty. What an idle socket costs besides (pings every 30 s) is the same either
 * way and not measured.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import type { CommonQueryMethods } from 'slonik';
import { createPresence } from '../src/gateway/presence/presence.js';
import { createPresenceStore } from '../src/gateway/presence/presence-store.js';
import { createSocketLeases, type SocketLease, type SocketLeases } from '../src/gateway/socket-leases.js';
import { createRedis } from '../src/shared/redis.js';
import { getFreePort } from '../stack/free-port.js';
import { startRedisServer } from '../stack/redis-server.js';

const { values: args } = parseArgs({
  options: {
    sockets: { type: 'string', default: '15000' },
    minutes: { type: 'string', default: '5' },
  },
});
const socketCount = Number(args.sockets);
const minutes = Number(args.minutes);
const logger = pino({ level: 'silent' });
/** No partners: idle sockets make no transitions, so this is never asked in the measured minutes. */
const noPartners = { any: () => Promise.resolve([]) } as unknown as CommonQueryMethods;

type Scenario = { readonly name: string; readonly leaseTtlMs: number; readonly presence: boolean };
const scenarios: Scenario[] = [
  { name: 'before presence (leases only, TTL 60 s)', leaseTtlMs: 60_000, presence: false },
  { name: 'with presence (TTL 45 s, sweep every 1 s, grace 10 s)', leaseTtlMs: 45_000, presence: true },
];

async function commandStats(redis: Redis): Promise<Map<string, number>> {
  const info = await redis.info('commandstats');
  const stats = new Map<string, number>();
  for (const match of info.matchAll(/^cmdstat_([a-z|]+):calls=(\d+)/gm)) stats.set(match[1]!, Number(match[2]));
  return stats;
}

async function redisCpuSeconds(redis: Redis): Promise<number> {
  const info = await redis.info('cpu');
  const value = (name: string) => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0);
  return value('used_cpu_user') + value('used_cpu_sys');
}

async function run(redis: Redis, scenario: Scenario, keyPrefix: string): Promise<void> {
  let now = Date.now();
  const clock = () => new Date(now);
  const plain = createSocketLeases({ redis, keyPrefix, maxPerUser: 10, ttlMs: scenario.leaseTtlMs, clock, logger });
  const presence = scenario.presence
    ? createPresence({
        store: createPresenceStore({ redis, keyPrefix, retentionMs: 30 * 86_400_000 }),
        connection: noPartners,
        publish: () => undefined,
        clock,
        logger,
        timings: { graceMs: 10_000, leaseTtlMs: scenario.leaseTtlMs },
        sweepIntervalMs: 3_600_000, // swept by hand below, on the simulated clock
      })
    : null;
  const leases: SocketLeases = presence ? presence.track(plain) : plain;
  const open: SocketLease[] = [];
  for (let start = 0; start < socketCount; start += 1_000) {
    const taken = await Promise.all(Array.from({ length: Math.min(1_000, socketCount - start) }, (_, i) => leases.acquire(1_000_000 + start + i)));
    for (const lease of taken) if (lease !== 'too_many') open.push(lease);
  }
  // Observations of the openings in flight finish; the sweeps below are run by hand.
  await presence?.close();

  await redis.config('RESETSTAT');
  const redisCpuBefore = await redisCpuSeconds(redis);
  const cpu = process.cpuUsage();
  const started = performance.now();
  let roundTrips = 0;
  const renewEverySteps = Math.round(scenario.leaseTtlMs / 3 / 1_000);
  const steps = minutes * 60;
  for (let step = 1; step <= steps; step++) {
    now += 1_000;
    if (step % renewEverySteps === 0) {
      await leases.renew(open);
      roundTrips += Math.ceil(open.length / 1_000);
    }
    if (presence) await presence.sweep();
  }
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const gatewayCpuMs = (used.user + used.system) / 1_000;
  const redisCpuMs = ((await redisCpuSeconds(redis)) - redisCpuBefore) * 1_000;
  const stats = await commandStats(redis);
  // The INFO calls this loop made itself are not the gateway's.
  stats.delete('info');
  stats.delete('config|resetstat');
  roundTrips += stats.get('eval') ?? 0;
  const total = [...stats.values()].reduce((sum, calls) => sum + calls, 0);
  const perSocketMinute = (calls: number) => (calls / open.length / minutes).toFixed(2);
  console.log(`\n${scenario.name}: ${open.length} sockets, ${minutes} simulated minutes (${(wallMs / 1_000).toFixed(1)} s of wall clock)`);
  console.log(`  Redis commands per socket per minute: ${perSocketMinute(total)} ` +
    `(${[...stats].sort((a, b) => b[1] - a[1]).map(([name, calls]) => `${name} ${perSocketMinute(calls)}`).join(', ')})`);
  console.log(`  round trips (scripts and pipelines) per minute: ${(roundTrips / minutes).toFixed(0)}`);
  console.log(`  gateway CPU: ${(gatewayCpuMs / minutes).toFixed(0)} ms per minute = ${((gatewayCpuMs / minutes / 60_000) * 100).toFixed(3)} % of a core; ` +
    `redis-server CPU: ${(redisCpuMs / minutes).toFixed(0)} ms per minute = ${((redisCpuMs / minutes / 60_000) * 100).toFixed(3)} % of a core`);
}

const dir = await mkdtemp(path.join(tmpdir(), 'matcha-bench-presence-'));
const server = await startRedisServer({ port: await getFreePort(), dir });
const redis = createRedis(server.url);
try {
  console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, load average ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
  for (const [index, scenario] of scenarios.entries()) await run(redis, scenario, `bench${index}:`);
} finally {
  await redis.quit();
  await server.close();
  await rm(dir, { recursive: true, force: true });
}
