import { connect, type NatsConnection } from 'nats';
import { getFreePorts } from '../../stack/free-port.js';
import { roleCredentialsEnv, type NatsRole } from '../../stack/nats-permissions.js';
import { sleep } from './bounded-parallel.js';
import type { BenchServers } from './bench-servers.js';
import { answers200, startRoleProcess, waitUntil, type RoleProcess } from './role-process.js';

export type SystemName = 'ours' | 'baseline';

/** One system under load: its WebSocket URLs (one per gateway or instance) and how to stop it. */
export type RunningSystem = {
  readonly name: SystemName;
  readonly wsUrls: readonly string[];
  readonly gatewayPids: readonly number[];
  /** Every process of the system (not the shared servers): its CPU time is reported. */
  readonly pids: readonly number[];
  /** The roles' `GET /hop-times` URLs when started with `hopTimesCapacity` (ours only); else none. */
  readonly hopTimesUrls: readonly string[];
  /** Resolves once the system has nothing left in flight from the previous load (queues drained). */
  settle(): Promise<void>;
  stop(): Promise<void>;
};

export type SystemOptions = {
  readonly servers: BenchServers;
  /** Gateways (ours) or instances (baseline). */
  readonly instances: number;
  readonly jwtSecret: string;
  readonly poolSize: number;
  /** Extra environment of our roles (tuning), over the defaults set here. */
  readonly roleEnv?: Readonly<Record<string, string>>;
  /** Where each role process writes a CPU profile of its run; none when undefined. */
  readonly cpuProfileDir?: string | undefined;
  /** Distinguishes the subjects, stream and keys of successive starts on the same servers. */
  readonly tag: string;
  /** Ours: HOP_TIMES_CAPACITY of the gateways, the relay and the fan-out (per-hop times); 0 or absent: none. */
  readonly hopTimesCapacity?: number;
  /** Node options of the gateways (ours) or instances (baseline), e.g. `--heapsnapshot-signal=SIGUSR2`. */
  readonly gatewayNodeOptions?: readonly string[];
  /** Every process runs its compiled entry (`buildCompiledRoles` first) rather than the sources under tsx. */
  readonly compiled?: boolean;
};

/** The load is not to be throttled: every message of the run must be accepted. */
const UNLIMITED_RATE = '100000000';
const START_TIMEOUT_MS = 60_000;

function baseEnv(): NodeJS.ProcessEnv {
  // PATH, HOME and the like; nothing of the caller's service configuration.
  const { PATH, HOME, TMPDIR, LANG } = process.env;
  return { PATH, HOME, TMPDIR, LANG, NODE_ENV: 'development', LOG_LEVEL: 'warn' };
}

const wsUrl = (port: number): string => `ws://127.0.0.1:${port}/api/v1/chat/ws`;

async function stopAll(processes: readonly RoleProcess[]): Promise<void> {
  // Gateways first (outermost), then the consumers and the relay.
  for (const process of [...processes].reverse()) await process.stop();
}

/** Our stack: relay, projector, fan-out and `instances` gateways, as `npm start` runs them (or the image, `compiled`). */
export async function startOurs(options: SystemOptions): Promise<RunningSystem> {
  const { servers } = options;
  const stream = `LOAD_${options.tag}`;
  const prefix = `load${options.tag}`;
  const env = {
    ...baseEnv(),
    DATABASE_URL: servers.oursDatabaseUrl,
    NATS_URL: servers.nats.url,
    REDIS_URL: servers.redis.url,
    NATS_STREAM: stream,
    NATS_SUBJECT_PREFIX: prefix,
    PROJECTOR_DURABLE: `projector`,
    FANOUT_DURABLE: `fanout`,
    HOP_TIMES_CAPACITY: String(options.hopTimesCapacity ?? 0),
    ...options.roleEnv,
  };
  const as = (role: NatsRole) => ({ ...env, ...roleCredentialsEnv(role, servers.natsPasswords[role]) });
  const profiled = { cpuProfileDir: options.cpuProfileDir, compiled: options.compiled };
  // Every role has an operators' port (/health, /ready, /metrics) with a fixed default: give each a free one.
  const ports = await getFreePorts(3 + 2 * options.instances);
  const [relayOps = 0, projectorOps = 0, fanoutOps = 0] = ports;
  const gatewayPorts = ports.slice(3, 3 + options.instances);
  const gatewayOpsPorts = ports.slice(3 + options.instances);
  const processes: RoleProcess[] = [];
  const nc: NatsConnection = await connect({ servers: servers.nats.url, user: 'operator', pass: servers.natsOperatorPassword });
  try {
    const relay = startRoleProcess('relay', 'src/relay/main.ts', { ...as('relay'), OPS_PORT: String(relayOps) }, profiled);
    processes.push(relay);
    const projector = startRoleProcess('projector', 'src/projections/main.ts', { ...as('projector'), OPS_PORT: String(projectorOps) }, profiled);
    processes.push(projector);
    const fanout = startRoleProcess('fanout', 'src/fanout/main.ts', { ...as('fanout'), OPS_PORT: String(fanoutOps) }, profiled);
    processes.push(fanout);
    const jsm = await nc.jetstreamManager();
    // The fan-out's consumer delivers only what is published after it exists: wait for it before any load.
    for (const durable of ['projector', 'fanout']) {
      await waitUntil(
        `the ${durable} consumer`,
        async () => (await jsm.consumers.info(stream, durable)) !== undefined,
        { timeoutMs: START_TIMEOUT_MS, process: durable === 'fanout' ? fanout : projector },
      );
    }
    await waitUntil('the relay', () => answers200(`http://127.0.0.1:${relayOps}/ready`), { timeoutMs: START_TIMEOUT_MS, process: relay });
    const gateways = gatewayPorts.map((port, index) =>
      startRoleProcess(`gateway-${index + 1}`, 'src/gateway/main.ts', {
        ...as('gateway'),
        // --pool-size is the gateway's, as it is the baseline's; the other roles keep their own defaults.
        DATABASE_POOL_SIZE: String(options.poolSize),
        PORT: String(port),
        OPS_PORT: String(gatewayOpsPorts[index] ?? 0),
        JWT_SECRET: options.jwtSecret,
        // A load test measures the pipeline, not the per-user limits.
        RATE_LIMIT_MESSAGES_PER_MINUTE: UNLIMITED_RATE,
        RATE_LIMIT_CONVERSATIONS_PER_MINUTE: UNLIMITED_RATE,
        RATE_LIMIT_READS_PER_MINUTE: UNLIMITED_RATE,
        RATE_LIMIT_LISTS_PER_MINUTE: UNLIMITED_RATE,
        RATE_LIMIT_RESUMES_PER_MINUTE: UNLIMITED_RATE,
        REDIS_KEY_PREFIX: `${prefix}:`,
      }, { ...profiled, nodeOptions: options.gatewayNodeOptions }),
    );
    processes.push(...gateways);
    await Promise.all(
      gateways.map((gateway, index) =>
        waitUntil(`${gateway.name}`, () => answers200(`http://127.0.0.1:${gatewayPorts[index]}/health`), { timeoutMs: START_TIMEOUT_MS, process: gateway }),
      ),
    );
  } catch (error) {
    await stopAll(processes);
    await nc.close();
    throw error;
  }

  return {
    name: 'ours',
    wsUrls: gatewayPorts.map(wsUrl),
    gatewayPids: processes.slice(3).map((process) => process.pid),
    pids: processes.map((process) => process.pid),
    hopTimesUrls: (options.hopTimesCapacity ?? 0) > 0
      ? [relayOps, fanoutOps, ...gatewayOpsPorts].map((port) => `http://127.0.0.1:${port}/hop-times`)
      : [],
    async settle() {
      // Drained when both consumers have nothing pending and the stream stopped growing (the relay is done).
      const jsm = await nc.jetstreamManager();
      let previous = -1;
      const deadline = Date.now() + 120_000;
      while (Date.now() < deadline) {
        const [info, projector, fanout] = await Promise.all([
          jsm.streams.info(stream),
          jsm.consumers.info(stream, 'projector'),
          jsm.consumers.info(stream, 'fanout'),
        ]);
        const pending = projector.num_pending + projector.num_ack_pending + fanout.num_pending + fanout.num_ack_pending;
        if (pending === 0 && info.state.messages === previous) return;
        previous = info.state.messages;
        await sleep(1_000);
      }
      process.stderr.write('[compare] our stack did not drain within 120 s; going on\n');
    },
    async stop() {
      await stopAll(processes);
      await nc.close();
    },
  };
}

/** `instances` baseline processes (bench/baseline) on their own ports, one database and one Redis channel. */
export async function startBaseline(options: SystemOptions): Promise<RunningSystem> {
  const { servers } = options;
  const ports = await getFreePorts(options.instances);
  const processes = ports.map((port, index) =>
    startRoleProcess(`baseline-${index + 1}`, 'bench/baseline/main.ts', {
      ...baseEnv(),
      PORT: String(port),
      DATABASE_URL: servers.baselineDatabaseUrl,
      DATABASE_POOL_SIZE: String(options.poolSize),
      REDIS_URL: servers.redis.url,
      REDIS_CHANNEL: `baseline:${options.tag}:messages`,
      JWT_SECRET: options.jwtSecret,
      RATE_LIMIT_MESSAGES_PER_MINUTE: UNLIMITED_RATE,
    }, { cpuProfileDir: options.cpuProfileDir, nodeOptions: options.gatewayNodeOptions, compiled: options.compiled }),
  );
  try {
    await Promise.all(
      processes.map((instance, index) =>
        waitUntil(instance.name, () => answers200(`http://127.0.0.1:${ports[index]}/health`), { timeoutMs: START_TIMEOUT_MS, process: instance }),
      ),
    );
  } catch (error) {
    await stopAll(processes);
    throw error;
  }
  return {
    name: 'baseline',
    wsUrls: ports.map(wsUrl),
    gatewayPids: processes.map((process) => process.pid),
    pids: processes.map((process) => process.pid),
    hopTimesUrls: [],
    // Nothing queues behind the baseline's answers: what was not delivered by now never will be.
    settle: () => sleep(2_000),
    stop: () => stopAll(processes),
  };
}

export function startSystem(name: SystemName, options: SystemOptions): Promise<RunningSystem> {
  return name === 'ours' ? startOurs(options) : startBaseline(options);
}
