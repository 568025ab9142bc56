import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayEnv } from '../../support/gateway.js';
import { createTestDatabase, natsUrl, testPrefix } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * `/ready` of a running role answers 503 while one of its dependencies cannot be reached, naming which, and
 * 200 again once it is back. A gateway process reaches Postgres and NATS through TCP proxies that the test
 * cuts (and refuses) one at a time; its Redis is the test run's.
 */

let postgres: TcpProxy;
let nats: TcpProxy;
let gateway: RoleProcess;
let opsPort: number;

const portOf = (url: string): number => Number(new URL(url).port);

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  postgres = await startTcpProxy({ host: '127.0.0.1', port: portOf(databaseUrl) });
  nats = await startTcpProxy({ host: '127.0.0.1', port: portOf(natsUrl()) });
  const throughProxy = new URL(databaseUrl);
  throughProxy.port = String(postgres.port);
  gateway = await spawnRole({
    name: 'gateway',
    entry: 'src/gateway/main.ts',
    env: {
      ...gatewayEnv({ databaseUrl: throughProxy.toString(), prefix: testPrefix() }),
      NATS_URL: `nats://127.0.0.1:${nats.port}`,
      PORT: '0',
    },
  });
  const line = await gateway.waitForOutput(/ops server on port (\d+)/, 60_000);
  opsPort = Number(/port (\d+)/.exec(line)?.[1]);
  await gateway.waitForOutput(/gateway listening/, 60_000);
}, 120_000);

afterAll(async () => {
  await stopAllRoles();
  await Promise.all([postgres?.close(), nats?.close()]);
});

async function ready(): Promise<{ status: number; body: unknown }> {
  const response = await fetch(`http://127.0.0.1:${opsPort}/ready`);
  return { status: response.status, body: await response.json() };
}

const allReady = { status: 200, body: { status: 'ready', checks: { postgres: 'ok', nats: 'ok', redis: 'ok', draining: 'ok' } } };

async function waitUntilReady(): Promise<void> {
  await waitUntil('/ready to answer 200', async () => (await ready()).status === 200, { timeoutMs: 30_000 });
}

describe('/ready of a running gateway', () => {
  it('answers 503 naming NATS while its NATS connection is cut, and 200 once it is back', async () => {
    expect(await ready()).toEqual(allReady);
    nats.cut({ refuse: true });
    try {
      expect(await ready()).toEqual({ status: 503, body: { status: 'not ready', checks: { postgres: 'ok', nats: 'failed', redis: 'ok', draining: 'ok' } } });
      await gateway.waitForOutput(/"failures":\{"nats":.*"msg":"not ready"/);
    } finally {
      nats.allow();
    }
    await waitUntilReady();
    expect(await ready()).toEqual(allReady);
  });

  it('answers 503 naming Postgres while Postgres cannot be reached, and 200 once it is back', async () => {
    expect(await ready()).toEqual(allReady);
    postgres.cut({ refuse: true });
    try {
      expect(await ready()).toEqual({ status: 503, body: { status: 'not ready', checks: { postgres: 'failed', nats: 'ok', redis: 'ok', draining: 'ok' } } });
    } finally {
      postgres.allow();
    }
    await waitUntilReady();
    expect(await ready()).toEqual(allReady);
  });
});
