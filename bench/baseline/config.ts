import { z } from 'zod';

/** The baseline's environment, parsed once by main.ts. */
const schema = z.object({
  PORT: z.coerce.number().int().min(0).max(65_535).default(8005),
  DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/ }),
  DATABASE_POOL_SIZE: z.coerce.number().int().positive().default(10),
  REDIS_URL: z.url({ protocol: /^rediss?$/ }).default('redis://127.0.0.1:6379'),
  /** Every instance publishes to and subscribes on this channel. */
  REDIS_CHANNEL: z.string().min(1).default('baseline:messages'),
  JWT_SECRET: z.string().min(1).default('dev-secret-change-me'),
  /** The seed's 100 messages per minute per user, a fixed window in Redis; the benchmark raises it. */
  RATE_LIMIT_MESSAGES_PER_MINUTE: z.coerce.number().int().positive().default(100),
  WS_PING_INTERVAL_MS: z.coerce.number().int().positive().default(30_000),
});

export type BaselineConfig = z.infer<typeof schema>;

export function loadBaselineConfig(env: Record<string, string | undefined>): BaselineConfig {
  const parsed = schema.safeParse(env);
  if (!parsed.success) throw new Error(`invalid configuration:\n${z.prettifyError(parsed.error)}`);
  return parsed.data;
}
