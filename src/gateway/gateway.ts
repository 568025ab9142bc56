import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { getRequestListener } from '@hono/node-server';
import type { Redis } from 'ioredis';
import type { NatsConnection } from 'nats';
import type { DatabasePool } from 'slonik';
import { decodeCursor } from '../delivery/cursor.js';
import { readCatchUp } from '../delivery/catch-up.js';
import { recordedEventFrame, type NewMessageFrame } from '../delivery/event-frames.js';
import { createParticipantDirectory } from '../delivery/participants.js';
import { formatFeedPosition, type FeedPosition } from '../event-store/recorded-event.js';
import type { GatewayConfig } from '../shared/config.js';
import { createHopTimes, hopClock, hopKey, type HopTimes } from '../shared/hop-times.js';
import type { Logger } from '../shared/logger.js';
import { startRevocationSweep } from './auth/revocation-sweep.js';
import { createRevokedTokens } from './auth/revoked-tokens.js';
import { createTokenVerifier } from './auth/verify-token.js';
import { createChatOperations } from './chat-operations.js';
import { watchDeliveryConnection } from './delivery-recovery.js';
import { createDeliverySubscriptions } from './delivery-subscriptions.js';
import { readFeedHorizon } from './feed-horizon.js';
import { startedAfter } from './started-after.js';
import { createRateLimiter } from './rate-limit.js';
import { createSocketLeases } from './socket-leases.js';
import { createPresence } from './presence/presence.js';
import { createPresenceStore } from './presence/presence-store.js';
import { createRestApp } from './rest/rest-app.js';
import { createSocketRegistry } from './ws/socket-registry.js';
import { createSocketServer } from './ws/socket-server.js';
import { splitFastPathCopy, type EphemeralFrame } from './ws/delivered-frames.js';
import { createTypingThrottle } from './ws/typing-throttle.js';
import type { GatewayMetrics } from './gateway-metrics.js';
import { newUlid } from '../shared/ulid.js';
import { createDemoBundle } from './demo/demo-bundle.js';
import { DEMO_PATH, demoRoutes } from './demo/demo-routes.js';

/** The gateway's settings: its slice of the role's configuration. */
export type GatewaySettings = Pick<
  GatewayConfig,
  | 'NODE_ENV'
  | 'NATS_SUBJECT_PREFIX'
  | 'JWT_SECRET'
  | 'JWT_LEEWAY_SECONDS'
  | 'ALLOWED_ORIGINS'
  | 'RATE_LIMIT_MESSAGES_PER_MINUTE'
  | 'RATE_LIMIT_CONVERSATIONS_PER_MINUTE'
  | 'RATE_LIMIT_READS_PER_MINUTE'
  | 'RATE_LIMIT_LISTS_PER_MINUTE'
  | 'RATE_LIMIT_RESUMES_PER_MINUTE'
  | 'MAX_SOCKETS_PER_USER'
  | 'WS_MAX_SOCKETS'
  | 'WS_MAX_UNAUTHENTICATED_SOCKETS'
  | 'WS_REVOCATION_CHECK_MS'
  | 'WS_SOCKET_LEASE_TTL_MS'
  | 'PRESENCE_OFFLINE_GRACE_MS'
  | 'PRESENCE_SWEEP_INTERVAL_MS'
  | 'PRESENCE_RETENTION_DAYS'
  | 'WS_MAX_FRAME_BYTES'
  | 'WS_PING_INTERVAL_MS'
  | 'WS_AUTH_TIMEOUT_MS'
  | 'WS_SEND_QUEUE_BYTES'
  | 'WS_CATCH_UP_LIMIT'
  | 'WS_CATCH_UP_BYTES'
  | 'SEND_BATCH_SIZE'
  | 'SEND_BATCHES_IN_FLIGHT'
  | 'FAST_PATH'
  | 'HTTP_BODY_LIMIT_BYTES'
  | 'READ_CONSISTENCY_TIMEOUT_MS'
  | 'REDIS_KEY_PREFIX'
>;

export type GatewayDeps = {
  readonly pool: DatabasePool;
  readonly redis: Redis;
  readonly nc: NatsConnection;
  readonly logger: Logger;
  readonly clock: () => Date;
  readonly newId: () => string;
  readonly settings: GatewaySettings;
  readonly metrics: GatewayMetrics;
  /** Per-hop times of the live path, for benchmarks (hop-times.ts); none kept when absent or disabled. */
  readonly hopTimes?: HopTimes;
};

export type Gateway = {
  readonly server: Server;
  readonly port: number;
  /** Open WebSockets and users with a delivery subscription, for health and tests. */
  stats(): { sockets: number; subscribedUsers: number };
  /** Runs a revocation pass now (it also runs every WS_REVOCATION_CHECK_MS); resolves with the sockets closed. */
  sweepRevocations(): Promise<number>;
  /** Closes the listener to new connections and refuses upgrades (503) on the ones still open. */
  stopAccepting(): void;
  /**
   * Stops accepting, then closes every open socket with 1012 (reconnect elsewhere, with `?since=`), spread
   * over `windowMs`, each once the frames it received are handled and answered. Resolves once all closed.
   */
  drainSockets(windowMs: number): Promise<void>;
  /**
   * Stops accepting, closes the sockets still open with 1012 at once, drops the delivery subscriptions and
   * waits for in-flight requests. The pool, Redis and NATS belong to the caller.
   */
  close(): Promise<void>;
};

/** The clone's root, where the development demo's page (`demo/`) and client (`client/`) live. */
const REPOSITORY_ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Participants never change; the bound only keeps memory flat. */
const PARTICIPANT_CACHE_SIZE = 10_000;

/** Typing signals forwarded per user and conversation: at most two per second, whatever they say. */
const TYPING_THROTTLE = { intervalMs: 1_000, perInterval: 2 } as const;

/** Builds the gateway (REST and WebSocket on one HTTP server) and listens on `port` (0: any free port). */
export async function startGateway(deps: GatewayDeps, options: { readonly port: number; readonly host?: string }): Promise<Gateway> {
  const { pool, redis, nc, logger, clock, settings } = deps;
  const startedAt = clock();

  const { metrics } = deps;
  const hopTimes = deps.hopTimes ?? createHopTimes(0);
  // The demo page exists in development only: in production the routes are never mounted, esbuild never loaded.
  const demo = settings.NODE_ENV === 'development';
  const verifyToken = metrics.countAuthFailures(createTokenVerifier({
    secret: settings.JWT_SECRET,
    leewaySeconds: settings.JWT_LEEWAY_SECONDS,
    revokedTokens: createRevokedTokens(redis, logger),
    clock,
  }));
  const limitSettings = {
    messages: { what: 'messages', perMinute: settings.RATE_LIMIT_MESSAGES_PER_MINUTE },
    conversations: { what: 'conversations started, blocked or unblocked', perMinute: settings.RATE_LIMIT_CONVERSATIONS_PER_MINUTE },
    reads: { what: 'marks read', perMinute: settings.RATE_LIMIT_READS_PER_MINUTE },
    lists: { what: 'conversation lists', perMinute: settings.RATE_LIMIT_LISTS_PER_MINUTE },
    resumes: { what: 'replays', perMinute: settings.RATE_LIMIT_RESUMES_PER_MINUTE },
  } as const;
  const limit = (name: keyof typeof limitSettings) =>
    metrics.countRateLimited(
      name,
      createRateLimiter({
        redis,
        keyPrefix: settings.REDIS_KEY_PREFIX,
        name,
        what: limitSettings[name].what,
        limit: limitSettings[name].perMinute,
        clock,
        logger,
      }),
    );
  const operations = createChatOperations({
    pool,
    clock,
    newId: deps.newId,
    logger,
    limits: { messages: limit('messages'), conversations: limit('conversations'), reads: limit('reads'), lists: limit('lists') },
    sendBatching: { maxBatchSize: settings.SEND_BATCH_SIZE, maxConcurrentBatches: settings.SEND_BATCHES_IN_FLIGHT },
    onMessagesAccepted: (count) => metrics.messagesAccepted(count),
    onSendBatch: (size) => metrics.sendBatch(size),
    readConsistencyTimeoutMs: settings.READ_CONSISTENCY_TIMEOUT_MS,
    participants: createParticipantDirectory({ connection: pool, capacity: PARTICIPANT_CACHE_SIZE }),
    hopTimes,
    ...(settings.FAST_PATH === 'on' && {
      // The fast path: each message just committed goes to both participants' sockets (the sender's other
      // devices too) on their signal subjects, ahead of the relay and the fan-out. It was not blocked at its
      // version (the decider refused the send otherwise), so its frame is the one the fan-out will publish.
      onMessagesAppended: (messages) => {
        for (const { event, participants, previous } of messages) {
          const frame = recordedEventFrame(event, { userId: participants[0], blockedBy: null });
          if (frame?.type !== 'new_message') continue;
          if (hopTimes.enabled) hopTimes.mark(hopKey(event.streamId, event.version), 'fast_path_published');
          const copy = { ...frame, previous: previous && formatFeedPosition(previous) };
          for (const userId of participants) {
            // Published for the other gateways; this one's own sockets get it directly (no echo, no parse).
            subscriptions.publish(userId, copy);
            receiveFastPath(userId, frame, previous);
          }
        }
      },
    }),
  });

  // The registry and the subscriptions refer to each other: frames go from a subscription to the sockets.
  const subscriptions = createDeliverySubscriptions({
    nc,
    subjectPrefix: settings.NATS_SUBJECT_PREFIX,
    logger,
    onFrame: (userId, frame, text) => {
      if (frame.type !== 'new_message') return registry.deliver(userId, frame, text);
      metrics.delivered(frame.data.timestamp);
      // Timed for the recipient only: the sender's echo is not on the path the benchmark measures.
      const timed = hopTimes.enabled && frame.data.sender_id !== userId;
      const receivedAt = timed ? hopClock() : 0;
      registry.deliver(userId, frame, text);
      if (timed) markReceipt(frame, 'delivery_received', receivedAt, true);
    },
    onFastPath: (userId, copy) => {
      const { frame, previous } = splitFastPathCopy(copy);
      receiveFastPath(userId, frame, previous);
    },
  });
  /** A fast-path copy for a user's sockets here, from another gateway or from this one (`onMessagesAppended`). */
  function receiveFastPath(userId: number, frame: NewMessageFrame, previous: FeedPosition | null): void {
    if (registry.countOf(userId) === 0) return;
    const timed = hopTimes.enabled && frame.data.sender_id !== userId;
    const receivedAt = timed ? hopClock() : 0;
    const written = registry.deliverEarly(userId, frame, previous) > 0;
    metrics.fastPathCopy(written);
    if (timed) markReceipt(frame, 'fast_path_received', receivedAt, written);
  }
  /** Benchmarks: when a recipient's copy came in by one path, and the first write of the message to its sockets. */
  function markReceipt(frame: NewMessageFrame, point: 'delivery_received' | 'fast_path_received', receivedAt: number, written: boolean): void {
    const key = hopKey(frame.conversation_id, frame.seq);
    hopTimes.mark(key, point, receivedAt);
    if (written) hopTimes.markFirst(key, 'socket_written');
  }
  /**
   * An ephemeral signal (typing, presence) for every socket of a user: published for the other gateways, and
   * handed to this gateway's own sockets directly, with no NATS round trip and no parse (the gateway's
   * connection is without echo: the server does not send its own messages back to it).
   */
  function sendSignal(userId: number, frame: EphemeralFrame): void {
    const text = subscriptions.publish(userId, frame);
    if (registry.countOf(userId) > 0) registry.deliver(userId, frame, text);
  }
  const registry = createSocketRegistry({ maxSocketsPerUser: settings.MAX_SOCKETS_PER_USER, subscriptions });
  const presence = createPresence({
    store: createPresenceStore({ redis, keyPrefix: settings.REDIS_KEY_PREFIX, retentionMs: settings.PRESENCE_RETENTION_DAYS * 86_400_000 }),
    connection: pool,
    publish: sendSignal,
    clock,
    logger,
    timings: { graceMs: settings.PRESENCE_OFFLINE_GRACE_MS, leaseTtlMs: settings.WS_SOCKET_LEASE_TTL_MS },
    sweepIntervalMs: settings.PRESENCE_SWEEP_INTERVAL_MS,
  });
  const leases = presence.track(
    createSocketLeases({
      redis,
      keyPrefix: settings.REDIS_KEY_PREFIX,
      maxPerUser: settings.MAX_SOCKETS_PER_USER,
      ttlMs: settings.WS_SOCKET_LEASE_TTL_MS,
      clock,
      logger,
    }),
  );

  const sockets = createSocketServer({
    logger,
    allowedOrigins: settings.ALLOWED_ORIGINS,
    // The demo page is served by this gateway: its socket comes from the gateway's own origin.
    sameOriginAllowed: demo,
    maxFrameBytes: settings.WS_MAX_FRAME_BYTES,
    pingIntervalMs: settings.WS_PING_INTERVAL_MS,
    maxSocketsPerUser: settings.MAX_SOCKETS_PER_USER,
    maxSockets: settings.WS_MAX_SOCKETS,
    maxUnauthenticatedSockets: settings.WS_MAX_UNAUTHENTICATED_SOCKETS,
    session: {
      operations,
      verifyToken,
      registry,
      resumeLimiter: limit('resumes'),
      leases,
      catchUp: (userId, after) => readCatchUp(pool, userId, after, { limit: settings.WS_CATCH_UP_LIMIT }),
      // Sockets opening together share a read (each one's started after it asked: the horizon's guarantee holds).
      feedHorizon: startedAfter(() => readFeedHorizon(pool)),
      decodeCursor,
      publish: sendSignal,
      typingThrottle: createTypingThrottle({ ...TYPING_THROTTLE, clock }),
      clock,
      logger,
      authTimeoutMs: settings.WS_AUTH_TIMEOUT_MS,
      sendQueueBytes: settings.WS_SEND_QUEUE_BYTES,
      catchUpBytes: settings.WS_CATCH_UP_BYTES,
    },
  });
  metrics.watchSockets(() => sockets.size);
  const revocations = startRevocationSweep({
    redis,
    sockets: () => sockets.sessions(),
    intervalMs: settings.WS_REVOCATION_CHECK_MS,
    logger,
    onPass: (pass) => metrics.revocationSweep(pass),
  });
  // A third of the lease's life between renewals: two may fail before a live socket's place lapses.
  const leaseRenewal = setInterval(() => {
    const open = [...sockets.sessions()].flatMap((session) => (session.lease ? [session.lease] : []));
    leases.renew(open).catch((error: unknown) => {
      logger.warn({ reason: error instanceof Error ? error.message : 'unknown error' }, 'could not renew socket leases; retrying at the next tick');
    });
  }, settings.WS_SOCKET_LEASE_TTL_MS / 3);
  leaseRenewal.unref();

  const app = createRestApp({
    operations,
    presence: { viewFor: (callerId, userIds) => presence.viewFor(callerId, userIds), limiter: limit('lists') },
    verifyToken,
    logger,
    newId: newUlid,
    onResponse: (status) => metrics.responded(status),
    bodyLimitBytes: settings.HTTP_BODY_LIMIT_BYTES,
    allowedOrigins: settings.ALLOWED_ORIGINS,
    startedAt,
    ...(demo && {
      pages: new Map([
        [DEMO_PATH, demoRoutes({ root: REPOSITORY_ROOT, jwtSecret: settings.JWT_SECRET, bundle: createDemoBundle({ root: REPOSITORY_ROOT, logger }) })],
      ]),
    }),
  });
  const listener = getRequestListener(app.fetch, {
    errorHandler: (error) => {
      logger.error({ err: error }, 'request failed outside the app');
    },
  });
  const server = createServer((request, response) => void listener(request, response));
  server.on('upgrade', (request, socket, head) => sockets.handleUpgrade(request, socket, head));
  server.on('clientError', (error: NodeJS.ErrnoException, socket) => {
    // The code only: the error's `rawPacket` holds the request's bytes, tokens included.
    logger.debug({ code: error.code }, 'malformed HTTP request');
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  // Core NATS drops frames while our subscriptions are gone; open sockets replay them from the log.
  const recovery = watchDeliveryConnection({ nc, registry, logger });

  let stopped: Promise<void> | undefined;
  const stopAccepting = (): void => {
    if (stopped) return;
    stopped = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    sockets.stopAccepting();
  };
  let closing: Promise<void> | undefined;
  return {
    server,
    port,
    stats: () => ({ sockets: sockets.size, subscribedUsers: subscriptions.size }),
    sweepRevocations: () => revocations.sweep(),
    stopAccepting,
    drainSockets(windowMs) {
      stopAccepting();
      return sockets.drain(windowMs);
    },
    close() {
      closing ??= (async () => {
        stopAccepting();
        recovery.close();
        revocations.stop();
        clearInterval(leaseRenewal);
        await sockets.close();
        await presence.close();
        subscriptions.close();
        // Requests still running get a moment to finish; then their connections are cut.
        const timer = setTimeout(() => server.closeAllConnections(), 5_000);
        await stopped;
        clearTimeout(timer);
      })();
      return closing;
    },
  };
}
