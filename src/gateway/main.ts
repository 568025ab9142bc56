import { ConfigError, configSchemas, loadConfig, type GatewayConfig } from '../shared/config.js';
import { createDatabasePool } from '../shared/database.js';
import { createLogger } from '../shared/logger.js';
import { connectNats } from '../shared/nats.js';
import { createRedis } from '../shared/redis.js';
import { createHopTimes } from '../shared/hop-times.js';
import { createMetricsRegistry } from '../shared/metrics.js';
import { startOpsServer } from '../shared/ops-server.js';
import { installProcessHygiene } from '../shared/process-hygiene.js';
import { monotonicUlids } from '../shared/ulid.js';
import { drainingCheck, natsReady, postgresReady, redisReady } from '../shared/readiness.js';
import { installShutdown } from '../shared/shutdown.js';
import { sleep } from '../shared/sleep.js';
import { createGatewayMetrics } from './gateway-metrics.js';
import { startGateway } from './gateway.js';

let config: GatewayConfig;
try {
  config = loadConfig(configSchemas.gateway);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  // What is wrong, without a stack trace: the operator has a variable to fix, not a bug to find.
  process.stderr.write(`gateway: ${error.message}\n`);
  process.exit(1);
}
const logger = createLogger({ role: 'gateway', level: config.LOG_LEVEL });
const hygiene = installProcessHygiene({ logger });

const pool = await createDatabasePool({ url: config.DATABASE_URL, maximumPoolSize: config.DATABASE_POOL_SIZE });
const redis = createRedis(config.REDIS_URL);
// ioredis reports every failed reconnection attempt (and prints them itself with no listener): one line per outage.
let redisDown = false;
redis.on('error', (error: NodeJS.ErrnoException) => {
  if (!redisDown) logger.warn({ code: error.code, reason: error.message }, 'Redis connection lost; reconnecting');
  redisDown = true;
});
redis.on('ready', () => {
  if (redisDown) logger.info('Redis connection back');
  redisDown = false;
});
// No echo: the gateway hands its own signals to its own sockets (gateway.ts), so NATS need not send them back.
const nc = await connectNats({ url: config.NATS_URL, name: 'gateway', user: config.NATS_USER, password: config.NATS_PASSWORD, echo: false });
const registry = createMetricsRegistry('gateway');
const hopTimes = createHopTimes(config.HOP_TIMES_CAPACITY);
const gateway = await startGateway(
  { pool, redis, nc, logger, clock: () => new Date(), newId: monotonicUlids(), settings: config, metrics: createGatewayMetrics(registry), hopTimes },
  { port: config.PORT },
);
logger.info({ port: gateway.port }, 'gateway listening');
const draining = drainingCheck();
// Metrics and readiness on their own port, not on the public one.
const ops = await startOpsServer({
  host: config.OPS_HOST,
  port: config.OPS_PORT,
  registry,
  readiness: [postgresReady(pool), natsReady(nc), redisReady(redis), draining.check],
  logger,
  hopTimes,
});

/** Past the drain window, how long the sockets' last in-flight frames and closing handshakes may take. */
const DRAIN_GRACE_MS = 10_000;

const shutdown = installShutdown({
  logger,
  phases: [
    // A drain, so that a deploy moves clients to the other gateways gradually and loses nothing:
    // the load balancer learns first, then no new connections, then the sockets close a few at a time.
    { name: 'readiness', close: () => Promise.resolve(draining.start()) },
    { name: 'load balancer delay', close: () => sleep(config.SHUTDOWN_READY_DELAY_MS), timeoutMs: config.SHUTDOWN_READY_DELAY_MS + 1_000 },
    { name: 'stop accepting', close: () => Promise.resolve(gateway.stopAccepting()) },
    { name: 'socket drain', close: () => gateway.drainSockets(config.WS_DRAIN_WINDOW_MS), timeoutMs: config.WS_DRAIN_WINDOW_MS + DRAIN_GRACE_MS },
    // Then what is left: requests in flight, the delivery subscriptions, and the connections they used.
    { name: 'gateway', close: () => gateway.close() },
    { name: 'ops server', close: () => ops.close() },
    { name: 'nats', close: () => nc.drain() },
    { name: 'redis', close: async () => void (await redis.quit()) },
    { name: 'database', close: () => pool.end() },
  ],
});
hygiene.shutDownWith(shutdown);
