import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { getFreePort } from '../../../stack/free-port.js';
import { gatewayEnv } from '../../support/gateway.js';
import { createTestDatabase, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';

/**
 * An error nothing catches, in a running role: one fatal JSON line (pino level 60) with the error, then the
 * role's own shutdown and a non-zero exit. The error comes from a preloaded module (test/support/throw-soon.mjs),
 * not from a hook in the role.
 */

const FATAL = 60;
let env: Record<string, string>;

beforeAll(async () => {
  env = gatewayEnv({ databaseUrl: await createTestDatabase(), prefix: testPrefix() });
});

afterAll(async () => {
  await stopAllRoles();
});

type LogLine = { level?: number; msg?: string; reason?: string; role?: string; err?: { message?: string } };

function jsonLines(output: string): LogLine[] {
  return output.split('\n').flatMap((line) => {
    try {
      return [JSON.parse(line) as LogLine];
    } catch {
      return [];
    }
  });
}

async function crashWith(kind: 'exception' | 'rejection', name: string, entry: string): Promise<{ role: RoleProcess; code: number | null }> {
  const role = await spawnRole({
    name,
    entry,
    env: { ...env, PORT: String(await getFreePort()), THROW_SOON: kind },
    preload: ['test/support/throw-soon.mjs'],
  });
  const code = await role.exited;
  return { role, code };
}

/**
 * The shutdown's last line is `stopped`, after every phase: by the lines' times, since pino's asynchronous
 * writes can put a line written a millisecond earlier after it in the output.
 */
function expectStoppedLast(lines: readonly Record<string, unknown>[]): void {
  const stopped = lines.find((line) => line['msg'] === 'stopped');
  expect(stopped, 'a stopped line').toBeDefined();
  for (const line of lines) expect(String(line['time']) <= String(stopped!['time']), JSON.stringify(line)).toBe(true);
}

describe('process hygiene', () => {
  it('an uncaught exception in the relay: one fatal line with the error, its shutdown, exit code 1', async () => {
    const { role, code } = await crashWith('exception', 'relay', 'src/relay/main.ts');
    const lines = jsonLines(role.output());
    const fatal = lines.filter((line) => line.level === FATAL);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ role: 'relay', msg: 'uncaught exception', err: { message: 'thrown soon by the test' } });
    expect(lines.find((line) => line.msg === 'shutting down')).toMatchObject({ reason: 'uncaught exception' });
    expectStoppedLast(lines);
    expect(code).toBe(1);
  });

  it('an unhandled rejection in the gateway: one fatal line with the error, its shutdown, exit code 1', async () => {
    const { role, code } = await crashWith('rejection', 'gateway', 'src/gateway/main.ts');
    const lines = jsonLines(role.output());
    const fatal = lines.filter((line) => line.level === FATAL);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ role: 'gateway', msg: 'unhandled rejection', err: { message: 'rejected soon by the test' } });
    expect(lines.find((line) => line.msg === 'shutting down')).toMatchObject({ reason: 'unhandled rejection' });
    expectStoppedLast(lines);
    expect(code).toBe(1);
  });

  it('a failure before any shutdown is installed (migrate, Postgres unreachable): one fatal line, exit code 1', async () => {
    const closedPort = await getFreePort();
    const role = await spawnRole({
      name: 'migrate',
      entry: 'src/migrate/main.ts',
      env: { ...env, DATABASE_URL: `postgres://postgres@127.0.0.1:${closedPort}/nothing` },
    });
    const code = await role.exited;
    const fatal = jsonLines(role.output()).filter((line) => line.level === FATAL);
    expect(fatal).toHaveLength(1);
    expect(fatal[0]).toMatchObject({ role: 'migrate', msg: 'unhandled rejection' });
    expect(fatal[0]?.err?.message).toContain('ECONNREFUSED');
    expect(code).toBe(1);
  });
});
