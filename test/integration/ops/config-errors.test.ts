import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayEnv } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles } from '../../support/processes.js';

/**
 * A role started with a variable it cannot use refuses to start: it exits non-zero before doing any work,
 * and its error names the variable, so an operator knows what to fix.
 */

let env: Record<string, string>;

beforeAll(async () => {
  env = { ...gatewayEnv({ databaseUrl: await createTestDatabase(), prefix: testPrefix() }), PORT: '0' };
});
afterAll(stopAllRoles);

const cases = [
  { role: 'relay', entry: 'src/relay/main.ts', variable: 'RELAY_BATCH_SIZE', value: '-3', started: /leadership|relaying/ },
  { role: 'projector', entry: 'src/projections/main.ts', variable: 'PROJECTOR_ACK_WAIT_MS', value: 'soon', started: /projecting/ },
  { role: 'fanout', entry: 'src/fanout/main.ts', variable: 'FANOUT_ACK_WAIT_MS', value: '10', started: /fanning out/ },
  { role: 'gateway', entry: 'src/gateway/main.ts', variable: 'RATE_LIMIT_MESSAGES_PER_MINUTE', value: 'lots', started: /gateway listening/ },
] as const;

describe('configuration errors at start-up', () => {
  it.each(cases)('$role exits non-zero and names $variable=$value', async ({ role, entry, variable, value, started }) => {
    const process = await spawnRole({ name: role, entry, env: { ...env, [variable]: value } });
    const code = await process.exited;
    const output = process.output();
    expect(code, output).not.toBe(0);
    expect(code, output).not.toBeNull();
    expect(output).toMatch(/invalid configuration/);
    expect(output).toContain(variable);
    expect(output).not.toMatch(started);
    expect(output).not.toMatch(/ops server on port/);
  });

  it('names a required variable that is missing (DATABASE_URL)', async () => {
    const process = await spawnRole({ name: 'relay', entry: 'src/relay/main.ts', env, unset: ['DATABASE_URL'] });
    const code = await process.exited;
    expect(code, process.output()).not.toBe(0);
    expect(process.output()).toContain('DATABASE_URL');
  });
});
