import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getFreePort } from '../../../stack/free-port.js';
import { gatewayEnv } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles } from '../../support/processes.js';

/**
 * The gateway role process refuses to start with a JWT secret anyone can know: none at all (it would sign
 * with the public development value) unless NODE_ENV explicitly says development or test, the development
 * value itself, or one shorter than 32 bytes.
 */

let env: Record<string, string>;

beforeAll(async () => {
  env = gatewayEnv({ databaseUrl: await createTestDatabase(), prefix: testPrefix() });
});
afterAll(stopAllRoles);

async function startGatewayProcess(overrides: Record<string, string>, unset: string[]) {
  const base: Record<string, string> = { ...env, PORT: String(await getFreePort()), ...overrides };
  for (const name of unset) delete base[name];
  return spawnRole({ name: 'gateway', entry: 'src/gateway/main.ts', env: base, unset });
}

async function expectRefusal(overrides: Record<string, string>, unset: string[], reason: RegExp): Promise<void> {
  const gateway = await startGatewayProcess(overrides, unset);
  const code = await Promise.race([gateway.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 40_000))]);
  expect(code, gateway.output()).toBe(1);
  expect(gateway.output()).toMatch(/JWT_SECRET/);
  expect(gateway.output()).toMatch(reason);
  expect(gateway.output()).not.toMatch(/gateway listening/);
}

describe('the JWT secret at start-up', () => {
  it('refuses to start with neither NODE_ENV nor JWT_SECRET set', async () => {
    await expectRefusal({}, ['NODE_ENV', 'JWT_SECRET'], /required unless NODE_ENV is development or test/);
  });

  it('refuses a production secret shorter than 32 bytes, and the development value', async () => {
    // Side by side: each is a process start.
    await Promise.all([
      expectRefusal({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(31) }, [], /at least 32 bytes/),
      // Bytes, not characters: 15 two-byte characters are 30 bytes (16 are enough, below).
      expectRefusal({ NODE_ENV: 'production', JWT_SECRET: 'é'.repeat(15) }, [], /at least 32 bytes/),
      expectRefusal({ NODE_ENV: 'production', JWT_SECRET: 'dev-secret-change-me' }, [], /development value/),
      expectRefusal({ JWT_SECRET: 'x'.repeat(20) }, ['NODE_ENV'], /at least 32 bytes/),
    ]);
  });

  it('starts with a 32-byte production secret, and without one when NODE_ENV says development', async () => {
    const production = await startGatewayProcess({ NODE_ENV: 'production', JWT_SECRET: 'é'.repeat(16) }, []);
    const development = await startGatewayProcess({ NODE_ENV: 'development' }, ['JWT_SECRET']);
    await Promise.all([production.waitForOutput(/gateway listening/), development.waitForOutput(/gateway listening/)]);
    await Promise.all([production.stop(), development.stop()]);
  });
});
