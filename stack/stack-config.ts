import { z } from 'zod';
import { configSchemas, loadConfig } from '../src/shared/config.js';

/** `npm start`'s own settings. Like the roles' config module, the only place here that reads `process.env`. */

const blankAsUnset = <T extends z.ZodType>(schema: T) =>
  z.preprocess((value) => (value === '' ? undefined : value), schema.optional());

const port = z.coerce.number().int().min(1).max(65_535);

const stackSchema = z.object({
  PORT: port.default(8004),
  JWT_SECRET: blankAsUnset(z.string().min(1)),
  DATABASE_URL: blankAsUnset(z.url({ protocol: /^postgres(ql)?$/ })),
  NATS_URL: blankAsUnset(z.string().min(1)),
  REDIS_URL: blankAsUnset(z.url({ protocol: /^rediss?$/ })),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  STACK_POSTGRES_PORT: port.default(5433),
  STACK_NATS_PORT: port.default(4222),
  STACK_REDIS_PORT: port.default(6379),
  /** Where our own Postgres and NATS keep their data; `.data` in the clone when unset. */
  STACK_DATA_DIR: blankAsUnset(z.string().min(1)),
  // The roles read these too (they inherit our environment); the NATS users' permissions are built from them.
  NATS_SUBJECT_PREFIX: configSchemas.base.shape.NATS_SUBJECT_PREFIX,
  NATS_STREAM: configSchemas.base.shape.NATS_STREAM,
  PROJECTOR_DURABLE: configSchemas.projector.shape.PROJECTOR_DURABLE,
  FANOUT_DURABLE: configSchemas.fanout.shape.FANOUT_DURABLE,
  NOTIFIER_DURABLE: configSchemas.notifier.shape.NOTIFIER_DURABLE,
  /** Echo the Postgres, NATS and Redis servers' own log lines. */
  STACK_SERVER_LOGS: z.stringbool().default(false),
});

export type StackConfig = z.infer<typeof stackSchema>;

export const DEV_JWT_SECRET = 'dev-secret-change-me';

/** @throws ConfigError naming every bad variable. */
export function loadStackConfig(env: NodeJS.ProcessEnv = process.env): StackConfig {
  return loadConfig(stackSchema, env);
}

/** The environment of a role process: ours (PATH and the like) plus the stack's URLs and settings. */
export function roleEnvironment(
  settings: {
    readonly databaseUrl: string;
    readonly natsUrl: string;
    readonly redisUrl: string;
    readonly port: number;
    readonly jwtSecret: string;
    readonly logLevel: string;
  },
  env: NodeJS.ProcessEnv = process.env,
): NodeJS.ProcessEnv {
  return {
    ...env,
    DATABASE_URL: settings.databaseUrl,
    NATS_URL: settings.natsUrl,
    REDIS_URL: settings.redisUrl,
    PORT: String(settings.port),
    JWT_SECRET: settings.jwtSecret,
    LOG_LEVEL: settings.logLevel,
    NODE_ENV: 'development',
  };
}
