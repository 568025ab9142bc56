import { z } from 'zod';

/**
 * Configuration is environment variables, parsed once per role by its `main.ts` and passed down.
 * Nothing else in the codebase reads `process.env`.
 */

type Env = Record<string, string | undefined>;

const positiveInt = z.coerce.number().int().positive();

const logLevel = z
  .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'])
  .default('info')
  .describe('pino log level');

const baseSchema = z.object({
  // No default: an unset NODE_ENV is treated as production, so nothing falls back to development settings.
  NODE_ENV: z.enum(['development', 'test', 'production']).optional(),
  LOG_LEVEL: logLevel,
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/ })
    .describe('Postgres connection string; built from DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD when absent'),
  NATS_URL: z.string().min(1).default('nats://127.0.0.1:4222').describe('comma-separated NATS server URLs'),
  NATS_USER: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" and "-" only (it names the reply inbox, one subject token)')
    .optional()
    .describe('this role\'s NATS user, with NATS_PASSWORD; the server grants each role only its subjects'),
  NATS_PASSWORD: z.string().min(1).optional(),
  NATS_STREAM: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" and "-" only')
    .default('CHAT_EVENTS'),
  NATS_SUBJECT_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'one subject token: letters, digits, "_" and "-" only')
    .default('chat')
    .describe('root token of every subject: <prefix>.events.<conversation_id>, <prefix>.to.<user_id>.events'),
  REDIS_URL: z
    .url({ protocol: /^rediss?$/ })
    .default('redis://127.0.0.1:6379')
    .describe('also REDIS_HOST/REDIS_PORT, or the seed\'s REDIS_URL=host:port'),
  OPS_HOST: z
    .string()
    .min(1)
    .default('127.0.0.1')
    .describe('address of the ops port (/metrics, /ready): loopback unless a scraper elsewhere needs it, e.g. 0.0.0.0 in a container'),
  HOP_TIMES_CAPACITY: z.coerce
    .number()
    .int()
    .min(0)
    .max(1_000_000)
    .default(0)
    .describe('benchmarks only: events whose per-hop times this role keeps for GET /hop-times on its ops port; 0 (default) keeps none'),
});

/** Postgres connections of a role's pool; the default fits what the role does with it. */
const databasePoolSize = (size: number) => positiveInt.max(1_000).default(size).describe('Postgres connections in this role\'s pool');

/** The operators' port of a role without its own HTTP server: /health, /ready, /metrics; 0 picks a free one. */
const opsPort = (port: number) =>
  z.coerce.number().int().min(0).max(65_535).default(port).describe('/health, /ready and /metrics');

const relaySchema = baseSchema.extend({
  OPS_PORT: opsPort(9101),
  // Reads a batch of the feed and records its checkpoint; the lease has a connection of its own.
  DATABASE_POOL_SIZE: databasePoolSize(2),
  RELAY_BATCH_SIZE: positiveInt.max(10_000).default(500),
  RELAY_POLL_INTERVAL_MS: positiveInt.default(1_000).describe('fallback poll when no NOTIFY arrives'),
  RELAY_LEASE_RETRY_MS: positiveInt.default(1_000).describe('how often a standby relay tries to take over'),
  EVENTS_RETENTION_DAYS: positiveInt.default(30).describe('JetStream max age of CHAT_EVENTS'),
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
});

const projectorSchema = baseSchema.extend({
  OPS_PORT: opsPort(9102),
  // One batch transaction at a time, and the odd readiness or metrics query.
  DATABASE_POOL_SIZE: databasePoolSize(4),
  PROJECTOR_DURABLE: z.string().regex(/^[A-Za-z0-9_-]+$/).default('projector').describe('JetStream durable name'),
  PROJECTOR_MAX_ATTEMPTS: positiveInt.max(100).default(5).describe('deliveries before an event is recorded as failed'),
  PROJECTOR_BATCH_SIZE: positiveInt.max(1_000).default(500).describe('most events applied in one transaction'),
  PROJECTOR_BATCH_WAIT_MS: z.coerce.number().int().min(0).max(1_000).default(10).describe('how long a batch may fill after its first event'),
  PROJECTOR_ACK_WAIT_MS: positiveInt.min(500).default(5_000).describe('redelivery delay of an event not acked (a crash)'),
});

const fanoutSchema = baseSchema.extend({
  OPS_PORT: opsPort(9103),
  // Reads are rare (participants on a cache miss, gap fills).
  DATABASE_POOL_SIZE: databasePoolSize(2),
  FANOUT_DURABLE: z.string().regex(/^[A-Za-z0-9_-]+$/).default('fanout').describe('JetStream durable name'),
  FANOUT_ACK_WAIT_MS: positiveInt.min(500).default(5_000).describe('redelivery delay of an event not acked (a crash)'),
  FANOUT_CACHE_SIZE: positiveInt.default(100_000).describe('conversations whose guard and participants stay in memory'),
  FANOUT_LEASE_RETRY_MS: positiveInt.default(1_000).describe('how often a standby fan-out tries to take over'),
});

const notifierSchema = baseSchema.extend({
  OPS_PORT: opsPort(9104),
  // The participants on a cache miss and one block lookup per batch.
  DATABASE_POOL_SIZE: databasePoolSize(2),
  NOTIFIER_DURABLE: z.string().regex(/^[A-Za-z0-9_-]+$/).default('notifier').describe('JetStream durable name'),
  NOTIFIER_ACK_WAIT_MS: positiveInt.min(500).default(5_000).describe('redelivery delay of an event not acked (a crash)'),
  NOTIFIER_CACHE_SIZE: positiveInt.default(100_000).describe('conversations whose participants stay in memory'),
  NOTIFIER_DEDUP_DAYS: positiveInt.max(365).default(7).describe('how long a message is remembered as notified: longer than any outage of the notifier'),
  NOTIFICATIONS_CHANNEL: z.string().default('notifications').describe('Redis channel of Matcha\'s notify service; empty turns notifications off'),
  REDIS_KEY_PREFIX: z.string().default('').describe('the gateways\' prefix: their socket leases are read there, and the notified keys written'),
});

/** Signs development tokens only; a production gateway refuses to start with it (or without JWT_SECRET). */
export const DEVELOPMENT_ONLY_JWT_SECRET = 'dev-secret-change-me';

/** HS256 keys shorter than the hash output (RFC 7518 §3.2) are guessable offline from any one token. */
const MIN_JWT_SECRET_BYTES = 32;

/** The replay CLI: one rebuild at a time. */
const replaySchema = baseSchema.extend({
  DATABASE_POOL_SIZE: databasePoolSize(2),
});

const commaList = z
  .string()
  .default('')
  .transform((text) => text.split(',').map((item) => item.trim()).filter((item) => item !== ''));

const gatewayVariables = baseSchema.extend({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8004),
  OPS_PORT: opsPort(9100),
  DATABASE_POOL_SIZE: databasePoolSize(10),
  JWT_SECRET: z.string().min(1).optional().describe('HS256 secret shared with Matcha\'s auth service'),
  JWT_LEEWAY_SECONDS: z.coerce.number().int().min(0).max(300).default(30).describe('clock skew allowed on exp/nbf'),
  ALLOWED_ORIGINS: commaList.describe('comma-separated Origins allowed to open the WebSocket; empty: any'),
  RATE_LIMIT_MESSAGES_PER_MINUTE: positiveInt.default(100).describe('messages appended per user, across REST, WS and gateways'),
  RATE_LIMIT_CONVERSATIONS_PER_MINUTE: positiveInt.default(30).describe('conversations started, blocked or unblocked per user'),
  RATE_LIMIT_READS_PER_MINUTE: positiveInt.default(120).describe('marks read per user (REST, read and join_conversation frames)'),
  RATE_LIMIT_LISTS_PER_MINUTE: positiveInt.default(60).describe('conversation lists per user'),
  RATE_LIMIT_RESUMES_PER_MINUTE: positiveInt.default(30).describe('replays per user (?since= and resume frames)'),
  MAX_SOCKETS_PER_USER: positiveInt.max(1_000).default(10),
  WS_MAX_SOCKETS: positiveInt.default(50_000).describe('open sockets per gateway before upgrades get 503'),
  WS_MAX_UNAUTHENTICATED_SOCKETS: positiveInt.default(1_000).describe('sockets waiting for their first-frame auth before upgrades without a token get 503'),
  // 45 s + one sweep: a dead gateway's users are offline within 60 s (docs/presence.md).
  WS_SOCKET_LEASE_TTL_MS: positiveInt.min(300).max(600_000).default(45_000).describe('how long a dead gateway\'s sockets still count against their users\' cap and keep them online'),
  PRESENCE_OFFLINE_GRACE_MS: z.coerce.number().int().min(0).max(600_000).default(10_000).describe('how long a user whose last socket closed stays online, so that a reconnect does not flap'),
  PRESENCE_RETENTION_DAYS: positiveInt.max(3_650).default(30).describe('how long a user\'s presence (its last_seen_at) is kept in Redis after its last change; then they read as never seen'),
  PRESENCE_SWEEP_INTERVAL_MS: positiveInt.min(50).max(10_000).default(1_000).describe('how often each gateway looks for users whose grace ended or whose gateway died'),
  WS_REVOCATION_CHECK_MS: positiveInt.min(100).max(15_000).default(10_000).describe('how often open sockets\' tokens are checked against revocations'),
  WS_MAX_FRAME_BYTES: positiveInt.min(1_024).max(1_048_576).default(8_192).describe('larger frames close with 1009'),
  WS_PING_INTERVAL_MS: positiveInt.default(30_000).describe('a peer that misses one ping interval is dropped'),
  WS_AUTH_TIMEOUT_MS: positiveInt.default(5_000).describe('time to send the first-frame auth'),
  WS_SEND_QUEUE_BYTES: positiveInt.default(1_048_576).describe('unsent bytes per socket before it is closed (4008)'),
  WS_CATCH_UP_LIMIT: positiveInt.max(10_000).default(500).describe('frames replayed on resume before resync_required'),
  WS_CATCH_UP_BYTES: positiveInt.default(2_097_152).describe('bytes of frames one catch-up may send before resync_required'),
  SHUTDOWN_READY_DELAY_MS: z.coerce.number().int().min(0).max(60_000).default(5_000).describe('on SIGTERM, how long /ready answers 503 before the gateway stops accepting (for the load balancer to notice)'),
  WS_DRAIN_WINDOW_MS: z.coerce.number().int().min(0).max(120_000).default(10_000).describe('on SIGTERM, the time over which open sockets are closed with 1012, spread so clients do not reconnect at once'),
  HTTP_BODY_LIMIT_BYTES: positiveInt.default(16_384),
  READ_CONSISTENCY_TIMEOUT_MS: z.coerce.number().int().min(0).default(2_000).describe('how long a query waits for the read tables to reach the log (then 503 read_model_behind)'),
  SEND_BATCH_SIZE: positiveInt.max(1_000).default(100).describe('most sends appended in one transaction'),
  SEND_BATCHES_IN_FLIGHT: positiveInt.max(64).default(1).describe('send transactions running at once; more sends wait for the next'),
  FAST_PATH: z
    .enum(['on', 'off'])
    .default('on')
    .describe('on: a message is published to its participants\' sockets right after its append commits, ahead of the relay and fan-out (which stay the authority); off: the ordered path only'),
  REDIS_KEY_PREFIX: z.string().default('').describe('prefix of rate-limit keys (not of blacklist:)'),
});

const gatewaySchema = gatewayVariables
  .superRefine((config, context) => {
    // Only an explicit development or test environment may use the public development secret.
    if (config.NODE_ENV === 'development' || config.NODE_ENV === 'test') return;
    const secret = config.JWT_SECRET;
    const problem =
      secret === undefined
        ? 'required unless NODE_ENV is development or test'
        : secret === DEVELOPMENT_ONLY_JWT_SECRET
          ? 'is the public development value; set the secret shared with Matcha\'s auth service'
          : Buffer.byteLength(secret, 'utf8') < MIN_JWT_SECRET_BYTES
            ? `must be at least ${MIN_JWT_SECRET_BYTES} bytes outside development and test`
            : undefined;
    if (problem) context.addIssue({ code: 'custom', path: ['JWT_SECRET'], message: problem });
  })
  .transform((config) => ({ ...config, JWT_SECRET: config.JWT_SECRET ?? DEVELOPMENT_ONLY_JWT_SECRET }));

export type BaseConfig = z.infer<typeof baseSchema>;
export type RelayConfig = z.infer<typeof relaySchema>;
export type ProjectorConfig = z.infer<typeof projectorSchema>;
export type GatewayConfig = z.infer<typeof gatewaySchema>;
export type FanoutConfig = z.infer<typeof fanoutSchema>;
export type NotifierConfig = z.infer<typeof notifierSchema>;
export type ReplayConfig = z.infer<typeof replaySchema>;

/** `node dist/healthcheck/main.js`, the image's HEALTHCHECK: where this container's role serves /health. */
const healthcheckSchema = z.object({
  OPS_HOST: baseSchema.shape.OPS_HOST,
  OPS_PORT: z.coerce
    .number()
    .int()
    .min(1)
    .max(65_535)
    .describe('the role\'s ops port, required: 9100 gateway, 9101 relay, 9102 projector, 9103 fan-out, 9104 notifier'),
});

export const configSchemas = {
  base: baseSchema,
  relay: relaySchema,
  projector: projectorSchema,
  gateway: gatewaySchema,
  fanout: fanoutSchema,
  notifier: notifierSchema,
  replay: replaySchema,
  healthcheck: healthcheckSchema,
} as const;

/** The variables the seed's deployment sets, read only as fallbacks (see withSeedFallbacks). */
const SEED_VARIABLES = ['DB_HOST', 'DB_PORT', 'DB_NAME', 'DB_USER', 'DB_PASSWORD', 'REDIS_HOST', 'REDIS_PORT'] as const;
type SeedVariable = (typeof SEED_VARIABLES)[number];

const schemaVariables = {
  base: baseSchema,
  relay: relaySchema,
  projector: projectorSchema,
  gateway: gatewayVariables,
  fanout: fanoutSchema,
  notifier: notifierSchema,
  replay: replaySchema,
  healthcheck: healthcheckSchema,
} as const satisfies Record<keyof typeof configSchemas, z.ZodObject>;

/** Every environment variable `loadConfig(configSchemas[name])` reads: the schema's own and the seed's fallbacks. */
export function configVariables(name: keyof typeof configSchemas): readonly string[] {
  return [...Object.keys(schemaVariables[name].shape), ...SEED_VARIABLES];
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Accepts the seed's variables (DB_*, REDIS_HOST/REDIS_PORT, REDIS_URL without scheme) as fallbacks. */
function withSeedFallbacks(env: Env): Env {
  const out: Env = { ...env };
  const seed = (name: SeedVariable): string | undefined => env[name];
  const dbHost = seed('DB_HOST');
  if (!out['DATABASE_URL'] && dbHost) {
    const user = encodeURIComponent(seed('DB_USER') ?? 'postgres');
    const password = seed('DB_PASSWORD');
    const port = seed('DB_PORT') ?? '5432';
    const name = seed('DB_NAME') ?? 'matcha_dev';
    out['DATABASE_URL'] = `postgres://${user}${password ? `:${encodeURIComponent(password)}` : ''}@${dbHost}:${port}/${name}`;
  }
  const redisUrl = out['REDIS_URL'];
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) out['REDIS_URL'] = `redis://${redisUrl}`;
  const redisHost = seed('REDIS_HOST');
  if (!out['REDIS_URL'] && redisHost) out['REDIS_URL'] = `redis://${redisHost}:${seed('REDIS_PORT') ?? '6379'}`;
  return out;
}

/**
 * Parses the environment with the role's schema.
 * @throws ConfigError naming every bad or missing variable.
 */
export function loadConfig<S extends z.ZodType>(schema: S, env: Env = process.env): z.infer<S> {
  const parsed = schema.safeParse(withSeedFallbacks(env));
  if (!parsed.success) {
    throw new ConfigError(`invalid configuration:\n${z.prettifyError(parsed.error)}`);
  }
  return parsed.data;
}
