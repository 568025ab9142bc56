import { createLeaderLease } from '../shared/leader-lease.js';
import { configSchemas, loadConfig } from '../shared/config.js';
import { createDatabasePool } from '../shared/database.js';
import { createLogger } from '../shared/logger.js';
import { connectNats } from '../shared/nats.js';
import { readConsumerLag } from '../shared/durable-consumer.js';
import { createHopTimes } from '../shared/hop-times.js';
import { createMetricsRegistry, watchConsumerLag } from '../shared/metrics.js';
import { installProcessHygiene } from '../shared/process-hygiene.js';
import { serveWorkerRole } from '../shared/worker-role.js';
import { createFanoutMetrics } from './fanout-metrics.js';
import { startFanout } from './fanout.js';

const config = loadConfig(configSchemas.fanout);
const logger = createLogger({ role: 'fanout', level: config.LOG_LEVEL });
const hygiene = installProcessHygiene({ logger });

const pool = await createDatabasePool({ url: config.DATABASE_URL, maximumPoolSize: config.DATABASE_POOL_SIZE });
const nc = await connectNats({ url: config.NATS_URL, name: 'fanout', user: config.NATS_USER, password: config.NATS_PASSWORD });
const lease = await createLeaderLease({
  databaseUrl: config.DATABASE_URL,
  name: `fanout:${config.NATS_STREAM}:${config.FANOUT_DURABLE}`,
  retryMs: config.FANOUT_LEASE_RETRY_MS,
});
const hopTimes = createHopTimes(config.HOP_TIMES_CAPACITY);
const registry = createMetricsRegistry('fanout');
const jsm = await nc.jetstreamManager();
watchConsumerLag(registry, 'fanout', () => readConsumerLag(jsm, config.NATS_STREAM, config.FANOUT_DURABLE));
const fanout = startFanout({
  pool,
  metrics: createFanoutMetrics(registry),
  nc,
  js: nc.jetstream(),
  jsm,
  lease,
  logger,
  streamName: config.NATS_STREAM,
  subjectPrefix: config.NATS_SUBJECT_PREFIX,
  durableName: config.FANOUT_DURABLE,
  ackWaitMs: config.FANOUT_ACK_WAIT_MS,
  cacheSize: config.FANOUT_CACHE_SIZE,
  hopTimes,
});

hygiene.shutDownWith(
  await serveWorkerRole({
    name: 'fanout',
    worker: fanout,
    logger,
    opsPort: config.OPS_PORT,
    opsHost: config.OPS_HOST,
    registry,
    pool,
    nc,
    resources: [{ name: 'lease', close: () => lease.close() }],
    hopTimes,
  }),
);
