import { Events, type NatsConnection, type QueuedIterator, type Status } from 'nats';
import type { Logger } from '../shared/logger.js';
import type { SocketRegistry } from './ws/socket-registry.js';

export type DeliveryRecovery = {
  /** Stops watching the connection; a recovery already running finishes on its own. */
  close(): void;
};

/** Sockets replaying from the log at once after a reconnect: the catch-ups share the database pool. */
const DEFAULT_CONCURRENCY = 8;

/**
 * Closes the gap core NATS leaves when this gateway's connection drops (the server restarts, or only our
 * connection is cut): until the client reconnects and re-subscribes, whatever the fan-out publishes on the
 * delivery subjects reaches nobody, and the fan-out has acked it. Clients whose sockets stayed open would
 * never resume, so the gateway replays for them.
 *
 * Guarantees, with the sockets' own (socket-session.ts):
 * - on `disconnect`, every registered socket (and any registered before the recovery below) holds its live
 *   frames, so none is sent ahead of an older one the outage dropped;
 * - on `reconnect`, after one flush round trip (the server has then processed the subscriptions the client
 *   re-sent, so every frame published from then on reaches us, and every event published before is
 *   committed and below the horizon of the catch-ups that follow), each socket replays once from the last
 *   event cursor it was sent, through the same buffered, seq-deduplicated replay as `resume`, or gets
 *   `resync_required` when that is too long; at most `concurrency` at a time. If the connection drops again
 *   before that, the sockets stay held for the next reconnect.
 */
export function watchDeliveryConnection(deps: {
  readonly nc: NatsConnection;
  readonly registry: Pick<SocketRegistry, 'suspendAll' | 'resumeAll'>;
  readonly logger: Logger;
  readonly concurrency?: number;
}): DeliveryRecovery {
  const { nc, registry, logger } = deps;
  const concurrency = deps.concurrency ?? DEFAULT_CONCURRENCY;
  const statuses = nc.status();
  let disconnects = 0;
  let stopped = false;

  async function recoverAll(afterDisconnects: number): Promise<void> {
    const started = performance.now();
    try {
      await nc.flush();
    } catch (error) {
      logger.warn({ err: error }, 'NATS flush after reconnecting failed; sockets stay held until the next reconnect');
      return;
    }
    // Dropped again meanwhile: the sockets stay held, and the next reconnect recovers them.
    if (stopped || disconnects !== afterDisconnects) return;
    const sockets = registry.resumeAll();
    let replayed = 0;
    let resyncs = 0;
    await forEachLimited(sockets, concurrency, async (socket) => {
      const recovery = await socket.recover();
      replayed += recovery.replayed;
      if (recovery.resyncRequired) resyncs++;
    });
    logger.info(
      { sockets: sockets.length, replayed, resyncRequired: resyncs, durationMs: Math.round(performance.now() - started) },
      'NATS reconnected: open sockets caught up from the log',
    );
  }

  const watching = (async () => {
    for await (const status of statuses) {
      if (stopped) break;
      // Handled without awaiting: a disconnect must suspend the sockets before any frame of the next
      // connection arrives, even while a recovery runs.
      if (status.type === Events.Disconnect) {
        disconnects++;
        registry.suspendAll();
        logger.warn({ server: status.data }, 'NATS disconnected: holding live frames until reconnected');
      } else if (status.type === Events.Reconnect) {
        void recoverAll(disconnects).catch((error: unknown) => logger.error({ err: error }, 'recovery after a NATS reconnect failed'));
      }
    }
  })();
  watching.catch((error: unknown) => logger.error({ err: error }, 'watching the NATS connection failed'));

  return {
    close() {
      stopped = true;
      // The status iterator of nats.js is a QueuedIterator; stopping it ends the loop above at once.
      (statuses as Partial<QueuedIterator<Status>>).stop?.();
    },
  };
}

/** Runs `task` for every item, at most `limit` at a time. */
async function forEachLimited<T>(items: readonly T[], limit: number, task: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await task(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
