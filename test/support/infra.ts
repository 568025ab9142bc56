import { randomInt } from 'node:crypto';
import pg from 'pg';
import { inject } from 'vitest';
import type { NatsRole, NatsUser } from '../../stack/nats-permissions.js';

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

function randomToken(length: number): string {
  return Array.from({ length }, () => ALPHABET[randomInt(ALPHABET.length)]).join('');
}

/** A fresh database copied from the migrated template; returns its URL. */
export async function createTestDatabase(): Promise<string> {
  const infra = inject('infra');
  const name = `test_${randomToken(12)}`;
  const client = new pg.Client({ connectionString: infra.postgresAdminUrl });
  await client.connect();
  try {
    for (let attempt = 1; ; attempt++) {
      try {
        await client.query(`CREATE DATABASE ${name} TEMPLATE ${client.escapeIdentifier(infra.templateDatabase)}`);
        break;
      } catch (error) {
        // 55006: the template is briefly in use (a session still closing); copying needs it idle.
        if ((error as { code?: string }).code !== '55006' || attempt >= 10) throw error;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
  } finally {
    await client.end();
  }
  return `${infra.postgresBaseUrl}/${name}`;
}

/**
 * A random lowercase token such as `t3k9x2`: the NATS subject prefix, the stream name
 * (`<PREFIX>_EVENTS`, see `testStreamName`) and the Redis key prefix of one test file.
 */
export function testPrefix(): string {
  return `t${randomToken(5)}`;
}

export function testStreamName(prefix: string): string {
  return `${prefix.toUpperCase()}_EVENTS`;
}

/**
 * The environment of a role process (relay, projector, fan-out, gateway) for one test file: its database,
 * its stream and subject prefix on the test NATS server. Tests add or override what they need.
 */
export function testRoleEnv(options: { readonly databaseUrl: string; readonly prefix: string }): Record<string, string> {
  return {
    // Explicit: an unset NODE_ENV counts as production (a gateway then wants a real JWT_SECRET).
    NODE_ENV: 'test',
    DATABASE_URL: options.databaseUrl,
    NATS_URL: natsUrl(),
    NATS_STREAM: testStreamName(options.prefix),
    NATS_SUBJECT_PREFIX: options.prefix,
    LOG_LEVEL: 'info',
  };
}

export function natsUrl(): string {
  return inject('infra').natsUrl;
}

/** The run's NATS users, for a nats-server a test starts itself. */
export function natsUsers(): readonly NatsUser[] {
  return inject('infra').natsUsers;
}

/** The user and password a role connects with, or the operator's (everything allowed, for looking from outside). */
export function natsCredentials(user: NatsRole | 'operator'): { user: string; password: string } {
  const found = natsUsers().find((entry) => entry.user === user);
  if (!found || typeof found.password !== 'string') throw new Error(`no NATS user ${user} in this test run`);
  return { user: found.user, password: found.password };
}

/** A role's NATS_USER and NATS_PASSWORD. */
export function natsRoleEnv(role: NatsRole): { NATS_USER: string; NATS_PASSWORD: string } {
  const { user, password } = natsCredentials(role);
  return { NATS_USER: user, NATS_PASSWORD: password };
}

export function redisUrl(): string {
  return inject('infra').redisUrl;
}
