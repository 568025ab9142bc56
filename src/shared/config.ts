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
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  LOG_LEVEL: logLevel,
  DATABASE_URL: z
    .url({ protocol: /^postgres(ql)?$/ })
    .describe('Postgres connection string; built from DB_HOST/DB_PORT/DB_NAME/DB_USER/DB_PASSWORD when absent'),
  DATABASE_POOL_SIZE: positiveInt.default(10),
  NATS_URL: z.string().min(1).default('nats://127.0.0.1:4222').describe('comma-separated NATS server URLs'),
  NATS_STREAM: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'letters, digits, "_" and "-" only')
    .default('CHAT_EVENTS'),
  NATS_SUBJECT_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/, 'one subject token: letters, digits, "_" and "-" only')
    .default('chat')
    .describe('root token of every subject: <prefix>.events.<conversation_id>, <prefix>.deliver.<user_id>'),
  REDIS_URL: z
    .url({ protocol: /^rediss?$/ })
    .default('redis://127.0.0.1:6379')
    .describe('also REDIS_HOST/REDIS_PORT, or the seed\'s REDIS_URL=host:port'),
});

/** The operators' port of a role without its own HTTP server: /health, /ready, /metrics; 0 picks a free one. */
const opsPort = (port: number) =>
  z.coerce.number().int().min(0).max(65_535).default(port).describe('/health, /ready and /metrics');

const relaySchema = baseSchema.extend({
  OPS_PORT: opsPort(9101),
  RELAY_BATCH_SIZE: positiveInt.max(10_000).default(500),
  RELAY_POLL_INTERVAL_MS: positiveInt.default(1_000).describe('fallback poll when no NOTIFY arrives'),
  RELAY_LEASE_RETRY_MS: positiveInt.default(1_000).describe('how often a standby relay tries to take over'),
  EVENTS_RETENTION_DAYS: positiveInt.default(30).describe('JetStream max age of CHAT_EVENTS'),
  NATS_STREAM_REPLICAS: z.coerce.number().int().min(1).max(5).default(1),
});

const projectorSchema = baseSchema.extend({
  OPS_PORT: opsPort(9102),
  PROJECTOR_DURABLE: z.string().regex(/^[A-Za-z0-9_-]+$/).default('projector').describe('JetStream durable name'),
  PROJECTOR_MAX_ATTEMPTS: positiveInt.max(100).default(5).describe('deliveries before an event is recorded as failed'),
  PROJECTOR_BATCH_SIZE: positiveInt.max(1_000).default(500).describe('most events applied in one transaction'),
});

export type BaseConfig = z.infer<typeof baseSchema>;
export type RelayConfig = z.infer<typeof relaySchema>;
export type ProjectorConfig = z.infer<typeof projectorSchema>;

export const configSchemas = { base: baseSchema, relay: relaySchema, projector: projectorSchema } as const;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Accepts the seed's variables (DB_*, REDIS_HOST/REDIS_PORT, REDIS_URL without scheme) as fallbacks. */
function withSeedFallbacks(env: Env): Env {
  const out: Env = { ...env };
  if (!out['DATABASE_URL'] && out['DB_HOST']) {
    const user = encodeURIComponent(out['DB_USER'] ?? 'postgres');
    const password = out['DB_PASSWORD'] ? `:${encodeURIComponent(out['DB_PASSWORD'])}` : '';
    const port = out['DB_PORT'] ?? '5432';
    const name = out['DB_NAME'] ?? 'matcha_dev';
    out['DATABASE_URL'] = `postgres://${user}${password}@${out['DB_HOST']}:${port}/${name}`;
  }
  const redisUrl = out['REDIS_URL'];
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) out['REDIS_URL'] = `redis://${redisUrl}`;
  if (!out['REDIS_URL'] && out['REDIS_HOST']) {
    out['REDIS_URL'] = `redis://${out['REDIS_HOST']}:${out['REDIS_PORT'] ?? '6379'}`;
  }
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
