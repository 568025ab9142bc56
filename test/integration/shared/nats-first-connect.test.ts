import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { NatsConnection } from 'nats';
import { afterAll, describe, expect, it } from 'vitest';
import { connectNats } from '../../../src/shared/nats.js';
import { getFreePorts } from '../../../stack/free-port.js';
import { startNatsServer, type NatsServer } from '../../../stack/nats-server.js';
import { natsCredentials, natsUsers } from '../../support/infra.js';

let storeDir: string | undefined;
let server: NatsServer | undefined;
let nc: NatsConnection | undefined;

afterAll(async () => {
  await nc?.close();
  await server?.close();
  if (storeDir) await rm(storeDir, { recursive: true, force: true });
});

describe('a role started before NATS', () => {
  it('waits for the server instead of failing its first connect', async () => {
    const [port = 0] = await getFreePorts(1);
    // Nothing listens on the port yet: without waiting on the first connect this rejects at once (refused).
    const connecting = connectNats({ url: `nats://127.0.0.1:${port}`, name: 'early-role', ...natsCredentials('relay') });
    const outcome = connecting.then(
      (connection) => ({ connection }),
      (error: unknown) => ({ error }),
    );

    storeDir = await mkdtemp(path.join(tmpdir(), 'nats-first-connect-'));
    server = await startNatsServer({ storeDir, port, users: natsUsers() });

    const result = await outcome;
    expect(result).not.toHaveProperty('error');
    if ('connection' in result) nc = result.connection;
    expect(nc?.getServer()).toBe(`127.0.0.1:${port}`);
    await nc?.flush();
  });
});
