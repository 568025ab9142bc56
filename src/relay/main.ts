import { configSchemas, loadConfig } from '../shared/config.js';
import { createDatabasePool } from '../shared/database.js';
import { createLogger } from '../shared/logger.js';
import { connectNats } from '../shared/nats.js';
import { createHopTimes } from '../shared/hop-times.js';
import { createMetricsRegistry } from '../shared/metrics.js';
import { installProcessHygiene } from '../shared/process-hygiene.js';
import { serveWorkerRole } from '../shared/worker-role.js';
import { ensureEventStream } from './event-stream.js';
import { createLeaderLease } from '../shared/leader-lease.js';
import { createRelayMetrics } from './relay-metrics.js';
import { relayCheckpointName, startRelay } from './relay.js';
import { readFeedProgress } from '../event-store/feed-checkpoint.js';

const config = loadConfig(configSchemas.relay);
const logger = createLogger({ role: 'relay', level: config.LOG_LEVEL });
const hygiene = installProcessHygiene({ logger });

const pool = await createDatabasePool({ url: config.DATABASE_URL, maximumPoolSize: config.DATABASE_POOL_SIZE });
const nc = await connectNats({ url: config.NATS_URL, name: 'relay', user: config.NATS_USER, password: config.NATS_PASSWORD });
const jsm = await nc.jetstreamManager();
await ensureEventStream(jsm, {
  name: config.NATS_STREAM,
  subjectPrefix: config.NATS_SUBJECT_PREFIX,
  retentionDays: config.EVENTS_RETENTION_DAYS,
  replicas: config.NATS_STREAM_REPLICAS,
});
const lease = await createLeaderLease({
  databaseUrl: config.DATABASE_URL,
  name: `relay:${config.NATS_STREAM}`,
  retryMs: config.RELAY_LEASE_RETRY_MS,
});
const hopTimes = createHopTimes(config.HOP_TIMES_CAPACITY);
const registry = createMetricsRegistry('relay');
const metrics = createRelayMetrics(registry);
metrics.watchFeedProgress(() => readFeedProgress(pool, relayCheckpointName(config.NATS_STREAM)));
const relay = startRelay({
  pool,
  metrics,
  js: nc.jetstream(),
  jsm,
  lease,
  logger,
  streamName: config.NATS_STREAM,
  subjectPrefix: config.NATS_SUBJECT_PREFIX,
  batchSize: config.RELAY_BATCH_SIZE,
  pollIntervalMs: config.RELAY_POLL_INTERVAL_MS,
  hopTimes,
});

hygiene.shutDownWith(
  await serveWorkerRole({
    name: 'relay',
    worker: relay,
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
