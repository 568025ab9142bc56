import type { DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  sendMessage,
  startConversation,
  type CommandDeps,
} from '../../../src/commands/conversation/conversation-commands.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { createTestDatabase, natsUrl, testPrefix, testStreamName } from '../../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { waitForLiveProjection } from '../../support/read-model.js';

let pool: DatabasePool;
const roles = new Map<string, { process: RoleProcess; port: number }>();

beforeAll(async () => {
  const databaseUrl = await createTestDatabase();
  const prefix = testPrefix();
  const env = {
    DATABASE_URL: databaseUrl,
    NATS_URL: natsUrl(),
    NATS_STREAM: testStreamName(prefix),
    NATS_SUBJECT_PREFIX: prefix,
    LOG_LEVEL: 'info',
  };
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 4 });
  for (const [name, entry] of [
    ['relay', 'src/relay/main.ts'],
    ['projector', 'src/projections/main.ts'],
  ] as const) {
    const process = await spawnRole({ name, entry, env });
    const line = await process.waitForOutput(/ops server on port (\d+)/);
    roles.set(name, { process, port: Number(/(\d+)/.exec(line)?.[1]) });
  }
  const deps: CommandDeps = { pool, clock: () => new Date(), newId: monotonicFactory() };
  const { conversationId } = await startConversation(deps, { initiatorId: 1, otherUserId: 2 });
  for (let i = 0; i < 5; i++) await sendMessage(deps, { conversationId, senderId: 1, content: `hello ${i}` });
  await waitForLiveProjection(pool);
});

afterAll(async () => {
  await stopAllRoles();
  await pool.end();
});

function get(role: string, path: string): Promise<Response> {
  return fetch(`http://127.0.0.1:${roles.get(role)?.port}${path}`);
}

/** The value of an unlabelled-by-us series in Prometheus text (the role label is on every series). */
function sample(text: string, name: string): number {
  const line = text.split('\n').find((candidate) => candidate.startsWith(`${name}{`) || candidate.startsWith(`${name} `));
  return Number(line?.split(' ').at(-1));
}

describe('the operators endpoints of the relay and the projector', () => {
  it.each(['relay', 'projector'])('%s answers /health and /ready with its dependencies', async (role) => {
    const health = await get(role, '/health');
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await get(role, '/ready');
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', checks: { postgres: 'ok', nats: 'ok' } });
    expect((await get(role, '/nope')).status).toBe(404);
  });

  it('counts what the relay published and the projector applied, with lag histograms', async () => {
    const relay = await (await get('relay', '/metrics')).text();
    expect(sample(relay, 'chat_relay_events_published_total')).toBe(6);
    expect(sample(relay, 'chat_relay_lag_seconds_count')).toBe(6);
    expect(sample(relay, 'chat_relay_leader')).toBe(1);
    expect(relay).toMatch(/process_resident_memory_bytes\{role="relay"\}/);

    const projector = await (await get('projector', '/metrics')).text();
    expect(sample(projector, 'chat_projector_events_total')).toBe(6);
    expect(sample(projector, 'chat_projector_lag_seconds_count')).toBe(6);
    expect(sample(projector, 'chat_projection_failures_total')).toBe(0);
  });
});
