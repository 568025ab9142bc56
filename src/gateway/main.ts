import { configSchemas, loadConfig } from '../shared/config.js';
import { createDatabasePool } from '../shared/database.js';
import { createLogger } from '../shared/logger.js';
import { connectNats } from '../shared/nats.js';
import { createRedis } from '../shared/redis.js';
import { createMetricsRegistry } from '../shared/metrics.js';
import { startOpsServer } from '../shared/ops-server.js';
import { monotonicUlids } from '../shared/ulid.js';
import { natsReady, postgresReady, redisReady } from '../shared/readiness.js';
import { installShutdown } from '../shared/shutdown.js';
import { createGatewayMetrics } from './gateway-metrics.js';
import { startGateway } from './gateway.js';

const config = loadConfig(configSchemas.gateway);
const logger = createLogger({ role: 'gateway', level: config.LOG_LEVEL });

const pool = await createDatabasePool({ url: config.DATABASE_URL, maximumPoolSize: config.DATABASE_POOL_SIZE });
const redis = createRedis(config.REDIS_URL);
const nc = await connectNats({ url: config.NATS_URL, name: 'gateway', user: config.NATS_USER, password: config.NATS_PASSWORD });
const registry = createMetricsRegistry('gateway');
const gateway = await startGateway(
  { pool, redis, nc, logger, clock: () => new Date(), newId: monotonicUlids(), settings: config, metrics: createGatewayMetrics(registry) },
  { port: config.PORT },
);
logger.info({ port: gateway.port }, 'gateway listening');
// Metrics and readiness on their own port, not on the public one.
const ops = await startOpsServer({
  port: config.OPS_PORT,
  registry,
  readiness: [postgresReady(pool), natsReady(nc), redisReady(redis)],
  logger,
});

installShutdown({
  logger,
  phases: [
    // Outermost first: stop taking requests and close sockets, then the connections they used.
    { name: 'gateway', close: () => gateway.close() },
    { name: 'ops server', close: () => ops.close() },
    { name: 'nats', close: () => nc.drain() },
    { name: 'redis', close: async () => void (await redis.quit()) },
    { name: 'database', close: () => pool.end() },
  ],
});
