import { configSchemas, loadConfig } from '../shared/config.js';
import { createDatabasePool } from '../shared/database.js';
import { readConsumerLag } from '../shared/durable-consumer.js';
import { createLogger } from '../shared/logger.js';
import { createMetricsRegistry, watchConsumerLag } from '../shared/metrics.js';
import { connectNats } from '../shared/nats.js';
import { installProcessHygiene } from '../shared/process-hygiene.js';
import { redisReady } from '../shared/readiness.js';
import { createRedis, logRedisOutages } from '../shared/redis.js';
import { serveWorkerRole } from '../shared/worker-role.js';
import { createNotifierMetrics } from './notifier-metrics.js';
import { startNotifier } from './notifier.js';

const SECONDS_PER_DAY = 86_400;

const config = loadConfig(configSchemas.notifier);
const logger = createLogger({ role: 'notifier', level: config.LOG_LEVEL });
const hygiene = installProcessHygiene({ logger });

const pool = await createDatabasePool({ url: config.DATABASE_URL, maximumPoolSize: config.DATABASE_POOL_SIZE });
const redis = createRedis(config.REDIS_URL);
logRedisOutages(redis, logger);
const nc = await connectNats({ url: config.NATS_URL, name: 'notifier', user: config.NATS_USER, password: config.NATS_PASSWORD });
const registry = createMetricsRegistry('notifier');
const jsm = await nc.jetstreamManager();
watchConsumerLag(registry, 'notifier', () => readConsumerLag(jsm, config.NATS_STREAM, config.NOTIFIER_DURABLE));
const notifier = startNotifier({
  pool,
  js: nc.jetstream(),
  jsm,
  redis,
  logger,
  metrics: createNotifierMetrics(registry),
  clock: () => new Date(),
  streamName: config.NATS_STREAM,
  subjectPrefix: config.NATS_SUBJECT_PREFIX,
  durableName: config.NOTIFIER_DURABLE,
  ackWaitMs: config.NOTIFIER_ACK_WAIT_MS,
  channel: config.NOTIFICATIONS_CHANNEL === '' ? null : config.NOTIFICATIONS_CHANNEL,
  keyPrefix: config.REDIS_KEY_PREFIX,
  notifiedTtlSeconds: config.NOTIFIER_DEDUP_DAYS * SECONDS_PER_DAY,
  cacheSize: config.NOTIFIER_CACHE_SIZE,
});

hygiene.shutDownWith(
  await serveWorkerRole({
    name: 'notifier',
    worker: notifier,
    logger,
    opsPort: config.OPS_PORT,
    opsHost: config.OPS_HOST,
    registry,
    pool,
    nc,
    readiness: [redisReady(redis)],
    resources: [{ name: 'redis', close: async () => void (await redis.quit()) }],
  }),
);
