import { execFileSync } from 'node:child_process';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { sql, type DatabasePool } from 'slonik';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { LIVE_TABLES } from '../../../src/projections/conversation/apply-conversation-events.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { sleep } from '../../../src/shared/sleep.js';
import { getFreePorts, isPortFree } from '../../../stack/free-port.js';
import { api, mintToken, openSocket, TEST_JWT_SECRET, type TestSocket } from '../../support/gateway.js';
import { spawnRole, stopAllRoles, type RoleProcess } from '../../support/processes.js';
import { waitUntil } from '../../support/wait-until.js';

/**
 * `npm start`'s stack (stack/main.ts, its own Postgres, NATS and Redis on free ports, its data in a temporary
 * folder) under traffic: user A sends over REST all along, user B listens on a socket (reconnecting with
 * `?since=` when its gateway goes). Each role is SIGKILLed in turn and one crashes on an uncaught exception;
 * each is started again, the stack stays up, and every acknowledged message reaches the read table and B.
 * Then Ctrl-C (SIGINT) stops everything with exit code 0.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ROLE_NAMES = ['relay', 'projector', 'fanout', 'gateway', 'notifier'] as const;
const A = 201;
const B = 202;

let stack: RoleProcess;
let dataDir: string;
let triggerFile: string;
let ports: { gateway: number; postgres: number; nats: number; redis: number };
let pool: DatabasePool | undefined;
const seenPids = new Set<number>();

const httpUrl = () => `http://127.0.0.1:${ports.gateway}`;

/** The pid of the role's latest process, from the stack's "<role> started (pid N)" lines. */
function pidOf(role: string): number | undefined {
  const matches = [...stack.output().matchAll(new RegExp(`\\[stack\\] ${role} started \\(pid (\\d+)\\)`, 'g'))];
  const pid = matches.length > 0 ? Number(matches.at(-1)![1]) : undefined;
  if (pid !== undefined) seenPids.add(pid);
  return pid;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

beforeAll(async () => {
  const [gateway = 0, postgres = 0, nats = 0, redis = 0] = await getFreePorts(4);
  ports = { gateway, postgres, nats, redis };
  dataDir = await mkdtemp(path.join(tmpdir(), 'matcha-stack-'));
  // Postgres runs as its own user when we are root: it must be able to reach its data folder.
  await chmod(dataDir, 0o755);
  triggerFile = path.join(dataDir, 'throw-now');
  const throwSoon = pathToFileURL(path.join(ROOT, 'test/support/throw-soon.mjs')).href;
  stack = await spawnRole({
    name: 'stack',
    entry: 'stack/main.ts',
    env: {
      PORT: String(gateway),
      STACK_POSTGRES_PORT: String(postgres),
      STACK_NATS_PORT: String(nats),
      STACK_REDIS_PORT: String(redis),
      STACK_DATA_DIR: dataDir,
      DATABASE_URL: '',
      NATS_URL: '',
      REDIS_URL: '',
      JWT_SECRET: TEST_JWT_SECRET,
      LOG_LEVEL: 'info',
      // Inherited by the roles: free operators' ports, no rate limit in the way, a fault for one of them.
      OPS_PORT: '0',
      RATE_LIMIT_MESSAGES_PER_MINUTE: '100000',
      FANOUT_ACK_WAIT_MS: '1000',
      PROJECTOR_ACK_WAIT_MS: '1000',
      NODE_OPTIONS: `${process.env['NODE_OPTIONS'] ?? ''} --import=${throwSoon}`.trim(),
      THROW_SOON_ENTRY: 'src/projections/main.ts',
      THROW_SOON_TRIGGER_FILE: triggerFile,
    },
  });
  await stack.waitForOutput(/\[stack\] up/, 240_000);
  for (const ready of [/leadership acquired/, /projecting/, /fanning out/, /gateway listening/, /"msg":"notifying"/]) await stack.waitForOutput(ready, 120_000);
  const databaseUrl = /postgres\s+(postgres:\/\/\S+)/.exec(stack.output())?.[1];
  if (!databaseUrl) throw new Error(`no postgres URL in the stack's output:\n${stack.output()}`);
  pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 2 });
}, 300_000);

afterAll(async () => {
  await pool?.end();
  await stopAllRoles();
  await rm(dataDir, { recursive: true, force: true });
});

describe('npm start', () => {
  it('restarts every role that dies, loses nothing acknowledged, and stops cleanly on Ctrl-C', async () => {
    const tokenA = await mintToken(A);
    const tokenB = await mintToken(B);
    const created = await api(httpUrl(), 'POST', '/api/v1/chat/conversations', { token: tokenA, body: { user_id: B } });
    expect(created.status).toBe(201);
    const conversationId = (created.body['data'] as { id: string }).id;

    // B's sockets, one after the other: a new one resumes after the last event frame any of them got.
    const sockets: TestSocket[] = [];
    const frames = () => sockets.flatMap((socket) => socket.frames);
    const delivered = () =>
      new Set(frames().flatMap((frame) => (frame.type === 'new_message' ? [(frame['data'] as { id: string }).id] : [])));
    let running = true;
    const receiver = (async () => {
      while (running) {
        const since = frames().findLast((frame) => typeof frame['cursor'] === 'string')?.['cursor'] as string | undefined;
        const query = since === undefined ? '' : `?since=${encodeURIComponent(since)}`;
        let socket: TestSocket;
        try {
          socket = await openSocket(`ws://127.0.0.1:${ports.gateway}/api/v1/chat/ws${query}`, { token: tokenB });
        } catch {
          await sleep(200);
          continue;
        }
        sockets.push(socket);
        await socket.closed;
      }
    })();
    // A socket opened without a cursor gets what commits after it opened (API.md): A sends once B is connected.
    await waitUntil('B connected', () => Promise.resolve(frames().some((frame) => frame.type === 'connected')), { timeoutMs: 60_000 });

    const acked: string[] = [];
    let attempts = 0;
    const sender = (async () => {
      while (running) {
        try {
          const sent = await api(httpUrl(), 'POST', '/api/v1/chat/messages', {
            token: tokenA,
            body: { conversation_id: conversationId, message: `message ${++attempts}` },
          });
          if (sent.status === 201) acked.push((sent.body['data'] as { id: string }).id);
        } catch {
          // The gateway is down: not acknowledged, nothing to check.
        }
        await sleep(50);
      }
    })();

    /** Barrier: a message acknowledged from now on has reached B. */
    const progress = async (after: string): Promise<void> => {
      const mark = acked.length;
      await waitUntil(`a message acknowledged after ${after} to reach B`, () => {
        const got = delivered();
        return Promise.resolve(acked.slice(mark).some((id) => got.has(id)));
      }, { timeoutMs: 120_000 });
    };

    await progress('the start');
    for (const role of ROLE_NAMES) {
      const before = pidOf(role);
      expect(before, `${role}'s pid`).toBeDefined();
      process.kill(before!, 'SIGKILL');
      await stack.waitForOutput(new RegExp(`\\[stack\\] ${role} exited with signal SIGKILL; restarting in \\d+ ms \\(restart 1\\)`), 60_000);
      await waitUntil(`${role} to be started again`, () => Promise.resolve(pidOf(role) !== before), { timeoutMs: 60_000 });
      expect(isAlive(pidOf(role)!)).toBe(true);
      await progress(`${role} was killed`);
    }

    const projectorBefore = pidOf('projector');
    await writeFile(triggerFile, '');
    await stack.waitForOutput(/\[projector\] \{"level":60[^\n]*"msg":"uncaught exception"/, 60_000);
    await stack.waitForOutput(/\[stack\] projector exited with code 1; restarting in \d+ ms \(restart 2\)/, 60_000);
    await waitUntil('the projector to be started again', () => Promise.resolve(pidOf('projector') !== projectorBefore), { timeoutMs: 60_000 });
    expect(stack.output()).toMatch(/\[projector\] \{"level":60[^\n]*"message":"thrown soon by the test"/);
    await progress('the projector crashed');

    running = false;
    await sender;
    expect(acked.length).toBeGreaterThan(10);
    const messageIds = z.object({ id: z.string() });
    await waitUntil('every acknowledged message in the read table and at B', async () => {
      const stored = new Set(
        (await pool!.any(sql.type(messageIds)`SELECT id FROM ${sql.identifier([LIVE_TABLES.messages])}`)).map((row) => row.id),
      );
      const got = delivered();
      return acked.every((id) => stored.has(id) && got.has(id));
    }, { timeoutMs: 120_000 });
    expect(stack.output()).not.toMatch(/\[stack\] stopping/);

    await pool!.end();
    pool = undefined;
    stack.kill('SIGINT');
    expect(await stack.exited).toBe(0);
    await receiver;
    for (const role of ROLE_NAMES) pidOf(role);
    expect([...seenPids].filter(isAlive)).toEqual([]);
    for (const port of Object.values(ports)) expect(await isPortFree(port)).toBe(true);
    expect(leftoverServers()).toEqual([]);
  }, 900_000);
});

/** Processes whose command line names the stack's data folder: its postgres, nats-server and redis-server. */
function leftoverServers(): string[] {
  try {
    return execFileSync('pgrep', ['-a', '-f', dataDir], { encoding: 'utf8' }).split('\n').filter((line) => line !== '');
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}
