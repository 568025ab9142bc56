import { configSchemas, loadConfig } from '../shared/config.js';
import { createDatabasePool } from '../shared/database.js';
import { createLogger } from '../shared/logger.js';
import { connectNats } from '../shared/nats.js';
import { readConsumerLag } from '../shared/durable-consumer.js';
import { createMetricsRegistry, watchConsumerLag } from '../shared/metrics.js';
import { installProcessHygiene } from '../shared/process-hygiene.js';
import { serveWorkerRole } from '../shared/worker-role.js';
import { LIVE_TABLES } from './conversation/apply-conversation-events.js';
import { createProjectorMetrics } from './projector-metrics.js';
import { startProjector } from './projector.js';

const config = loadConfig(configSchemas.projector);
const logger = createLogger({ role: 'projector', level: config.LOG_LEVEL });
const hygiene = installProcessHygiene({ logger });

const pool = await createDatabasePool({ url: config.DATABASE_URL, maximumPoolSize: config.DATABASE_POOL_SIZE });
const nc = await connectNats({ url: config.NATS_URL, name: 'projector', user: config.NATS_USER, password: config.NATS_PASSWORD });
const registry = createMetricsRegistry('projector');
const jsm = await nc.jetstreamManager();
watchConsumerLag(registry, 'projector', () => readConsumerLag(jsm, config.NATS_STREAM, config.PROJECTOR_DURABLE));
const projector = startProjector({
  pool,
  metrics: createProjectorMetrics(registry),
  js: nc.jetstream(),
  jsm,
  logger,
  streamName: config.NATS_STREAM,
  subjectPrefix: config.NATS_SUBJECT_PREFIX,
  durableName: config.PROJECTOR_DURABLE,
  tables: LIVE_TABLES,
  maxAttempts: config.PROJECTOR_MAX_ATTEMPTS,
  batchSize: config.PROJECTOR_BATCH_SIZE,
  batchWaitMs: config.PROJECTOR_BATCH_WAIT_MS,
  ackWaitMs: config.PROJECTOR_ACK_WAIT_MS,
});

hygiene.shutDownWith(
  await serveWorkerRole({
    name: 'projector',
    worker: projector,
    logger,
    opsPort: config.OPS_PORT,
    opsHost: config.OPS_HOST,
    registry,
    pool,
    nc,
  }),
);
