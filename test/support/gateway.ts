import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { Writable } from 'node:stream';
import type { Redis } from 'ioredis';
import { SignJWT } from 'jose';
import type { NatsConnection } from 'nats';
import { pino } from 'pino';
import type { DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { WebSocket, type ClientOptions } from 'ws';
import { Registry } from 'prom-client';
import { createGatewayMetrics } from '../../src/gateway/gateway-metrics.js';
import { startGateway, type Gateway, type GatewaySettings } from '../../src/gateway/gateway.js';
import { configSchemas, loadConfig } from '../../src/shared/config.js';
import { createDatabasePool } from '../../src/shared/database.js';
import { connectNats } from '../../src/shared/nats.js';
import { createRedis } from '../../src/shared/redis.js';
import { ContractViolation } from './contract/contract-documents.js';
import { checkResponse } from './contract/rest-contract.js';
import { checkUpgradeRefusal, socketContract } from './contract/socket-contract.js';
import { natsCredentials, natsUrl, redisUrl, testRoleEnv } from './infra.js';

export const TEST_JWT_SECRET = 'gateway-test-secret-0123456789abcdef';

/** The environment of a gateway for one test file: its database, subject prefix and Redis key prefix. */
export function gatewayEnv(options: { readonly databaseUrl: string; readonly prefix: string }): Record<string, string> {
  return {
    ...testRoleEnv(options),
    REDIS_URL: redisUrl(),
    REDIS_KEY_PREFIX: `${options.prefix}:`,
    JWT_SECRET: TEST_JWT_SECRET,
    // Tests reuse a few user ids for many calls; the limits' own tests set them low.
    RATE_LIMIT_CONVERSATIONS_PER_MINUTE: '100000',
    RATE_LIMIT_READS_PER_MINUTE: '100000',
    RATE_LIMIT_LISTS_PER_MINUTE: '100000',
    RATE_LIMIT_RESUMES_PER_MINUTE: '100000',
    // Roles' operator ports: any free one, as test files run side by side.
    OPS_PORT: '0',
    // A SIGTERM drains in half a second rather than 15 (drain.test.ts sets its own).
    SHUTDOWN_READY_DELAY_MS: '100',
    WS_DRAIN_WINDOW_MS: '400',
  };
}

export type TestGateway = {
  readonly gateway: Gateway;
  readonly url: string;
  readonly wsUrl: string;
  readonly pool: DatabasePool;
  readonly redis: Redis;
  readonly nc: NatsConnection;
  readonly settings: GatewaySettings;
  /** Every log line the gateway wrote (level debug and up). */
  logs(): string;
  close(): Promise<void>;
};

/**
 * Runs a gateway in this process on a free port, with its own pool, Redis and NATS connections, configured
 * like the role (`loadConfig(configSchemas.gateway)`) from `gatewayEnv` plus `env`.
 */
export async function startTestGateway(options: {
  readonly databaseUrl: string;
  readonly prefix: string;
  readonly env?: Readonly<Record<string, string>>;
  readonly clock?: () => Date;
}): Promise<TestGateway> {
  const settings = loadConfig(configSchemas.gateway, { ...gatewayEnv(options), ...options.env });
  let logs = '';
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      logs += chunk.toString('utf8');
      done();
    },
  });
  const logger = pino({ level: 'debug', base: { role: 'gateway' } }, sink);
  const pool = await createDatabasePool({ url: options.databaseUrl, maximumPoolSize: 6 });
  const redis = createRedis(settings.REDIS_URL);
  // As the role connects (src/gateway/main.ts): without echo.
  const nc = await connectNats({ url: natsUrl(), name: 'test-gateway', ...natsCredentials('gateway'), echo: false });
  const gateway = await startGateway(
    {
      pool,
      redis,
      nc,
      logger,
      clock: options.clock ?? (() => new Date()),
      newId: monotonicFactory(),
      settings,
      metrics: createGatewayMetrics(new Registry()),
    },
    { port: 0, host: '127.0.0.1' },
  );
  const url = `http://127.0.0.1:${gateway.port}`;
  return {
    gateway,
    url,
    wsUrl: `ws://127.0.0.1:${gateway.port}/api/v1/chat/ws`,
    pool,
    redis,
    nc,
    settings,
    logs: () => logs,
    async close() {
      await gateway.close();
      await nc.close();
      redis.disconnect();
      await pool.end();
    },
  };
}

/** A Matcha-style access token: HS256, `sub` the user id as a string of digits. */
export async function mintToken(
  userId: number | string,
  options: {
    readonly secret?: string;
    /** Seconds from now; negative for an expired token. */
    readonly expiresIn?: number;
    /** Seconds from now. */
    readonly notBefore?: number;
    readonly claims?: Record<string, unknown>;
  } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({ ...options.claims, jti: crypto.randomUUID() })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(String(userId))
    .setIssuedAt(now)
    .setExpirationTime(now + (options.expiresIn ?? 3_600));
  if (options.notBefore !== undefined) jwt.setNotBefore(now + options.notBefore);
  return jwt.sign(new TextEncoder().encode(options.secret ?? TEST_JWT_SECRET));
}

/** An unsigned token (`alg: none`) claiming to be `userId`. */
export function unsignedToken(userId: number): string {
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const now = Math.floor(Date.now() / 1000);
  return `${encode({ alg: 'none', typ: 'JWT' })}.${encode({ sub: String(userId), iat: now, exp: now + 3_600 })}.`;
}

export type ApiResponse = { status: number; body: Record<string, unknown>; headers: Headers };

/**
 * One REST call; `body` is sent as JSON unless it is a string (sent as is). The answer is checked against
 * docs/openapi.yaml (test/support/contract): one the document does not allow throws a ContractViolation.
 */
export async function api(
  baseUrl: string,
  method: string,
  path: string,
  options: { readonly token?: string; readonly body?: unknown; readonly headers?: Record<string, string>; readonly signal?: AbortSignal } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.token !== undefined) headers['authorization'] = `Bearer ${options.token}`;
  let body: string | undefined;
  if (options.body !== undefined) {
    body = typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
    headers['content-type'] ??= 'application/json';
  }
  const response = await fetch(`${baseUrl}${path}`, {
    method,
    headers,
    ...(body === undefined ? {} : { body }),
    ...(options.signal === undefined ? {} : { signal: options.signal }),
  });
  const text = await response.text();
  let parsed: Record<string, unknown>;
  let json: unknown;
  try {
    json = JSON.parse(text);
    parsed = json as Record<string, unknown>;
  } catch {
    parsed = { raw: text };
  }
  checkResponse({ method, path, status: response.status, headers: response.headers, body: json });
  return { status: response.status, body: parsed, headers: response.headers };
}

export type Frame = Record<string, unknown> & { type: string };

/** A WebSocket client for tests: keeps every frame received and waits for the ones a test expects. */
export type TestSocket = {
  readonly ws: WebSocket;
  readonly frames: Frame[];
  send(frame: unknown): void;
  /** Resolves with the first frame (among all received, also earlier ones) that matches. */
  waitFor(match: (frame: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  /** Resolves once `count` frames match. */
  waitForCount(match: (frame: Frame) => boolean, count: number, timeoutMs?: number): Promise<Frame[]>;
  /** Sends a frame with a fresh request_id and resolves with the `ack` or `error` carrying it. */
  request(frame: Record<string, unknown>, timeoutMs?: number): Promise<Frame>;
  readonly closed: Promise<{ code: number; reason: string }>;
  close(): Promise<void>;
};

let requests = 0;

/**
 * Opens a socket. Resolves once it is open; for an upgrade the server refuses, rejects with an error whose
 * message holds the HTTP status (`Unexpected server response: 401`). Every frame received, the answers to the
 * frames sent, the close code and a refusal's status are checked against docs/asyncapi.yaml
 * (test/support/contract): a mismatch rejects the waits that follow and `close()`, or, when nothing waits on
 * the socket any more, is thrown once it closes, so the test fails either way.
 */
export async function openSocket(url: string, options: ClientOptions & { readonly token?: string } = {}): Promise<TestSocket> {
  const { token, ...clientOptions } = options;
  const headers = { ...clientOptions.headers, ...(token === undefined ? {} : { authorization: `Bearer ${token}` }) };
  const ws = new WebSocket(url, { ...clientOptions, headers });
  const frames: Frame[] = [];
  const listeners = new Set<() => void>();
  const contract = socketContract();
  let violation: { readonly error: ContractViolation; reported: boolean } | null = null;
  const holdTo = (check: () => void): void => {
    try {
      check();
    } catch (error) {
      if (!(error instanceof ContractViolation)) throw error;
      violation ??= { error, reported: false };
    }
  };
  const reportViolation = (): ContractViolation | null => {
    if (!violation) return null;
    violation.reported = true;
    return violation.error;
  };
  ws.on('message', (data: Buffer) => {
    const frame = JSON.parse(data.toString('utf8')) as Frame;
    holdTo(() => contract.received(frame));
    frames.push(frame);
    for (const listener of listeners) listener();
  });
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.on('close', (code, reason) => {
      holdTo(() => contract.closed(code));
      resolve({ code, reason: reason.toString('utf8') });
      for (const listener of listeners) listener();
      setImmediate(() => {
        const unreported = violation && !violation.reported ? reportViolation() : null;
        if (unreported) throw unreported;
      });
    });
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', (error) => {
      const refused = /Unexpected server response: (\d+)/.exec(String(error));
      try {
        if (refused?.[1]) checkUpgradeRefusal(Number(refused[1]));
      } catch (contractError) {
        reject(contractError instanceof Error ? contractError : new Error(String(contractError)));
        return;
      }
      reject(error);
    });
  });
  ws.on('error', () => undefined);

  const waitForCount = (match: (frame: Frame) => boolean, count: number, timeoutMs = 10_000): Promise<Frame[]> =>
    new Promise<Frame[]>((resolve, reject) => {
      const check = (): void => {
        const failed = reportViolation();
        if (failed) {
          finish();
          reject(failed);
          return;
        }
        const found = frames.filter(match);
        if (found.length >= count) {
          finish();
          resolve(found.slice(0, count));
        } else if (ws.readyState === ws.CLOSED) {
          finish();
          reject(new Error(`socket closed with ${found.length}/${count} matching frames; received:\n${dump(frames)}`));
        }
      };
      const finish = (): void => {
        clearTimeout(timer);
        listeners.delete(check);
      };
      const timer = setTimeout(() => {
        finish();
        reject(new Error(`timed out with ${frames.filter(match).length}/${count} matching frames; received:\n${dump(frames)}`));
      }, timeoutMs);
      listeners.add(check);
      check();
    });

  const socket: TestSocket = {
    ws,
    frames,
    send: (frame) => {
      contract.sent(frame);
      ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
    },
    waitForCount,
    waitFor: async (match, timeoutMs) => {
      const [frame] = await waitForCount(match, 1, timeoutMs);
      return frame!;
    },
    request: async (frame, timeoutMs) => {
      const requestId = `r${++requests}`;
      socket.send({ ...frame, request_id: requestId });
      return socket.waitFor((received) => received['request_id'] === requestId && (received.type === 'ack' || received.type === 'error'), timeoutMs);
    },
    closed,
    async close() {
      if (ws.readyState !== ws.CLOSED) ws.close();
      await closed;
      const failed = reportViolation();
      if (failed) throw failed;
    },
  };
  return socket;
}

function dump(frames: readonly Frame[]): string {
  return frames.map((frame) => JSON.stringify(frame)).join('\n').slice(-4_000);
}

/** The HTTP status of a refused upgrade, or 101 when the socket opened (it is closed again). */
export async function upgradeStatus(url: string, options: ClientOptions & { readonly token?: string } = {}): Promise<number> {
  try {
    const socket = await openSocket(url, options);
    await socket.close();
    return 101;
  } catch (error) {
    const match = /Unexpected server response: (\d+)/.exec(String(error));
    if (match?.[1]) return Number(match[1]);
    throw error;
  }
}

/**
 * A refused upgrade's status and JSON body, read with a plain HTTP request (ws hides the body). `agent` sends
 * it on a connection already open (a keep-alive one), where a listener that stopped accepting still answers.
 */
export async function upgradeRefusal(
  url: string,
  headers: Readonly<Record<string, string>> = {},
  agent?: http.Agent,
): Promise<{ status: number; body: Record<string, unknown> }> {
  const target = new URL(url.replace(/^ws/, 'http'));
  return new Promise((resolve, reject) => {
    const request = http.request(target, {
      ...(agent && { agent }),
      headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'), ...headers },
    });
    request.on('response', (response) => {
      let text = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (text += chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, body: JSON.parse(text) as Record<string, unknown> }));
    });
    request.on('upgrade', (_response, socket) => {
      socket.destroy();
      reject(new Error('the upgrade was accepted'));
    });
    request.on('error', reject);
    request.end();
  });
}
