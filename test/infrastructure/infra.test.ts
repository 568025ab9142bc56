import { Redis } from 'ioredis';
import { connect } from 'nats';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { createTestDatabase, natsCredentials, natsUrl, redisUrl, testPrefix, testStreamName } from '../support/infra.js';
import { spawnRole, stopAllRoles } from '../support/processes.js';

afterAll(stopAllRoles);

describe('test infrastructure', () => {
  it('gives each caller its own database, migrated from the template', async () => {
    const [first, second] = await Promise.all([createTestDatabase(), createTestDatabase()]);
    expect(first).not.toBe(second);
    const client = new pg.Client({ connectionString: first });
    await client.connect();
    try {
      const { rows } = await client.query<{ name: string }>('SELECT name FROM schema_migrations ORDER BY name');
      expect(rows.length).toBeGreaterThan(0);
      expect(rows[0]?.name).toMatch(/\.sql$/);
    } finally {
      await client.end();
    }
  });

  it('reaches NATS with JetStream enabled', async () => {
    const { user, password } = natsCredentials('operator');
    const nc = await connect({ servers: natsUrl(), user, pass: password });
    try {
      const jsm = await nc.jetstreamManager();
      const info = await jsm.getAccountInfo();
      expect(info.limits).toBeDefined();
    } finally {
      await nc.close();
    }
  });

  it('reaches Redis', async () => {
    const redis = new Redis(redisUrl(), { lazyConnect: true });
    await redis.connect();
    try {
      expect(await redis.ping()).toBe('PONG');
    } finally {
      await redis.quit();
    }
  });

  it('hands out distinct lowercase prefixes', () => {
    const prefix = testPrefix();
    expect(prefix).toMatch(/^[a-z][a-z0-9]{5}$/);
    expect(testStreamName(prefix)).toBe(`${prefix.toUpperCase()}_EVENTS`);
    expect(new Set(Array.from({ length: 50 }, testPrefix)).size).toBe(50);
  });

  it('runs a role as a real process and captures its output', async () => {
    const role = await spawnRole({
      name: 'migrate',
      entry: 'src/migrate/main.ts',
      env: { DATABASE_URL: await createTestDatabase(), LOG_LEVEL: 'info' },
    });
    await expect(role.waitForOutput(/"role":"migrate"/, 30_000)).resolves.toContain('migrate');
    expect(await role.exited).toBe(0);
    await expect(role.waitForOutput(/never printed/, 1_000)).rejects.toThrow(/exited before printing/);
  });
});
