import { STATUS_CODES, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import type { Logger } from '../../shared/logger.js';
import { sleep } from '../../shared/sleep.js';
import { bearerToken } from '../auth/bearer-token.js';
import type { AuthenticatedUser } from '../auth/verify-token.js';
import { describeError, errorEnvelope, type ErrorCode } from '../errors.js';
import type { SocketLease } from '../socket-leases.js';
import { drainSchedule } from './drain-schedule.js';
import { CLOSE } from './server-frames.js';
import type { RequestTrace } from '../../event-store/event-metadata.js';
import { flatString } from '../../shared/flat-string.js';
import { newUlid } from '../../shared/ulid.js';
import { REQUEST_ID_HEADER, requestTrace } from '../request-context.js';
import { createSocketDeadlines } from './socket-deadlines.js';
import { startSocketSession, type SessionDeps, type SocketSession } from './socket-session.js';

export const SOCKET_PATH = '/api/v1/chat/ws';

export type SocketServer = {
  /** The node server's `upgrade` listener. */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** Open sockets, authenticated or not. */
  readonly size: number;
  /** The open sockets, for the revocation sweep. */
  sessions(): Iterable<SocketSession>;
  /** Refuses upgrades from now on (503). */
  stopAccepting(): void;
  /**
   * Stops accepting, then drains the open sockets (`SocketSession.drain`: in-flight frames answered, then
   * 1012) spread over `windowMs` by `drainSchedule`. Resolves once every one of them has closed.
   */
  drain(windowMs: number): Promise<void>;
  /**
   * Drains whatever is still open at once, cuts what has not closed within 3 s, stops the heartbeat, then
   * waits (5 s at most: the shutdown phase has 10) for the frames still being handled.
   */
  close(): Promise<void>;
};

/**
 * The WebSocket endpoint, on the HTTP server's port. The upgrade is refused with a plain HTTP answer (and
 * no socket) for a wrong path (404), an Origin outside ALLOWED_ORIGINS (403), a bad token in the header or
 * in `?token=` (401) and a user at the socket cap (429). Without a token the socket opens and must
 * authenticate with its first frame.
 *
 * The request URL is never logged: `?token=` carries a credential.
 */
export function createSocketServer(deps: {
  /** What every session needs; the server adds its schedule of deadlines and learns of each close. */
  readonly session: Omit<SessionDeps, 'deadlines' | 'onClosed'>;
  readonly logger: Logger;
  readonly allowedOrigins: readonly string[];
  /** Also accept an Origin that is this server's own (`http://<Host>`): a page the gateway serves itself. */
  readonly sameOriginAllowed?: boolean;
  readonly maxFrameBytes: number;
  readonly pingIntervalMs: number;
  readonly maxSocketsPerUser: number;
  /** Open sockets on this gateway, authenticated or not, before upgrades get 503. */
  readonly maxSockets: number;
  /** Sockets still waiting for their first-frame `auth`, before upgrades without a token get 503. */
  readonly maxUnauthenticatedSockets: number;
}): SocketServer {
  const { logger } = deps;
  // maxPayload: ws closes a socket that sends a bigger frame with 1009, before buffering it whole.
  const wss = new WebSocketServer({ noServer: true, maxPayload: deps.maxFrameBytes, clientTracking: false });
  /** The trace of each upgrade request (request-context.ts), echoed in its 101 answer. */
  const traces = new WeakMap<IncomingMessage, RequestTrace>();
  wss.on('headers', (headers, request) => {
    const trace = traces.get(request);
    if (trace) headers.push(`${REQUEST_ID_HEADER}: ${trace.requestId}`);
  });
  const sessions = new Set<SocketSession>();
  /** One timer for every socket's auth timeout, token expiry and slow-reader cut-off. */
  const deadlines = createSocketDeadlines();
  const sessionDeps: SessionDeps = { ...deps.session, deadlines, onClosed: (session) => sessions.delete(session) };
  let closing = false;
  /** Sockets opened without a token that have not sent their `auth` frame yet (bounded by the auth timeout). */
  const unauthenticated = (): number => {
    let count = 0;
    for (const session of sessions) if (!session.authenticated) count++;
    return count;
  };

  const heartbeat = setInterval(() => {
    for (const session of sessions) session.heartbeat();
  }, deps.pingIntervalMs);
  heartbeat.unref();

  function refuse(socket: Duplex, status: number, code: ErrorCode, message: string): void {
    const body = JSON.stringify(errorEnvelope({ message, restCode: code }));
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
        'Connection: close\r\nContent-Type: application/json; charset=utf-8\r\n' +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  }

  async function upgrade(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<void> {
    // URL.parse, not new URL: the error of a URL that does not parse carries the URL, `?token=` included.
    const url = URL.parse(request.url ?? '/', 'http://gateway.invalid');
    if (url === null) return refuse(socket, 400, 'invalid_request', 'request URL does not parse');
    if (closing) return refuse(socket, 503, 'unavailable', 'server is shutting down; reconnect (the load balancer sends you to another gateway)');
    if (url.pathname !== SOCKET_PATH && url.pathname !== `${SOCKET_PATH}/`) {
      return refuse(socket, 404, 'not_found', 'no WebSocket endpoint here');
    }
    const origin = request.headers.origin;
    // Browsers always send Origin; a client without one is not a browser page and not what this guards.
    const sameOrigin = deps.sameOriginAllowed === true && origin === `http://${request.headers.host}`;
    if (deps.allowedOrigins.length > 0 && origin !== undefined && !sameOrigin && !deps.allowedOrigins.includes(origin)) {
      logger.info({ origin }, 'WebSocket upgrade from a refused origin');
      return refuse(socket, 403, 'forbidden', 'origin not allowed');
    }
    let user: AuthenticatedUser | null = null;
    try {
      const token = bearerToken(request.headers.authorization) ?? url.searchParams.get('token') ?? undefined;
      const claimed = request.headers['x-user-id'];
      if (token !== undefined) {
        user = await deps.session.verifyToken(token, { claimedUserId: Array.isArray(claimed) ? claimed[0] : claimed });
      }
    } catch (error) {
      const answer = describeError(error);
      if (answer.report) logger.error({ err: error }, 'WebSocket authentication failed');
      return refuse(socket, answer.status, answer.restCode, answer.message);
    }
    if (user && deps.session.registry.countOf(user.userId) >= deps.maxSocketsPerUser) {
      return refuse(socket, 429, 'rate_limited', `at most ${deps.maxSocketsPerUser} sockets per user`);
    }
    // Memory and file descriptors are finite: past the caps, a client retries (on another gateway).
    if (sessions.size >= deps.maxSockets) {
      logger.warn({ sockets: sessions.size }, 'socket cap reached; refusing an upgrade');
      return refuse(socket, 503, 'unavailable', 'this server holds as many sockets as it may; retry shortly');
    }
    if (!user && unauthenticated() >= deps.maxUnauthenticatedSockets) {
      logger.warn({ limit: deps.maxUnauthenticatedSockets }, 'unauthenticated socket cap reached; refusing an upgrade');
      return refuse(socket, 503, 'unavailable', 'too many sockets waiting to authenticate; retry shortly');
    }
    // The cap across gateways: a place in the user's count, taken before the socket opens.
    let lease: SocketLease | undefined;
    if (user) {
      let taken: SocketLease | 'too_many';
      try {
        taken = await deps.session.leases.acquire(user.userId);
      } catch (error) {
        const answer = describeError(error);
        return refuse(socket, answer.status, answer.restCode, answer.message);
      }
      if (taken === 'too_many') return refuse(socket, 429, 'rate_limited', `at most ${deps.maxSocketsPerUser} sockets per user`);
      lease = taken;
    }
    if (closing || socket.destroyed) {
      if (lease) deps.session.leases.release(lease);
      return void socket.destroy();
    }
    const since = url.searchParams.get('since');
    // Flat: the socket holds its request id as long as it is open.
    const trace = requestTrace({ requestId: request.headers['x-request-id'], traceparent: request.headers.traceparent }, () => flatString(newUlid()));
    traces.set(request, trace);
    wss.handleUpgrade(request, socket, head, (ws) => {
      if (closing) {
        if (lease) deps.session.leases.release(lease);
        return ws.close(CLOSE.serviceRestart, 'server restarting: reconnect');
      }
      sessions.add(startSocketSession(ws, sessionDeps, { user, since: since === '' ? null : since, trace, ...(lease && { lease }) }));
    });
  }

  return {
    handleUpgrade(request, socket, head) {
      socket.on('error', (error: NodeJS.ErrnoException) => logger.debug({ code: error.code }, 'upgrade socket error'));
      upgrade(request, socket, head).catch((error: unknown) => {
        logger.error({ err: error }, 'WebSocket upgrade failed');
        socket.destroy();
      });
    },
    get size() {
      return sessions.size;
    },
    sessions: () => sessions,
    stopAccepting() {
      closing = true;
    },
    async drain(windowMs) {
      closing = true;
      const open = [...sessions];
      logger.info({ sockets: open.length, windowMs }, 'draining sockets: closing them with 1012 over the window');
      const startedAt = Date.now();
      const closed: Promise<void>[] = [];
      let next = 0;
      for (const tick of drainSchedule(open.length, windowMs)) {
        await sleep(startedAt + tick.atMs - Date.now());
        for (const session of open.slice(next, next + tick.count)) closed.push(drainOne(session));
        next += tick.count;
      }
      await Promise.all(closed);
      logger.info({ sockets: open.length, durationMs: Date.now() - startedAt }, 'sockets drained');
    },
    async close() {
      closing = true;
      const handled = [...sessions].map((session) => session.settled());
      await Promise.race([Promise.all([...sessions].map(drainOne)), sleep(CLOSE_HANDSHAKE_MS)]);
      for (const session of sessions) session.terminate();
      clearInterval(heartbeat);
      deadlines.close();
      wss.close();
      // The caller closes the pool and Redis only after the frames being handled ran to their end.
      await Promise.race([Promise.all(handled), new Promise((resolve) => setTimeout(resolve, 5_000).unref())]);
    },
  };
}

/** How long a drained socket's peer has to answer the closing handshake before the connection is cut. */
const CLOSE_HANDSHAKE_MS = 3_000;

/** Drains one session and waits for its close; a peer that does not answer in time is cut off. */
async function drainOne(session: SocketSession): Promise<void> {
  const closed = new Promise<void>((resolve) => session.onceClosed(resolve));
  await session.drain();
  const timer = setTimeout(() => session.terminate(), CLOSE_HANDSHAKE_MS);
  await closed;
  clearTimeout(timer);
}
