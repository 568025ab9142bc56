/**
 * The baseline for the load comparison: the original Go service's design (seed/chat-service-README.md),
 * written small in TypeScript. A message is validated, rate-limited, INSERTed into Postgres, PUBLISHed on
 * Redis pub/sub to every instance, and each instance writes it to its local sockets of the two
 * participants. Several instances can run on different ports against the same database and Redis.
 *
 *   DATABASE_URL=postgres://... REDIS_URL=redis://... PORT=8005 node --import tsx bench/baseline/main.ts
 *
 * It uses the same libraries as the gateway (hono, ws, slonik, ioredis, jose) with a connection pool and
 * nothing artificially slow; it lacks what the event-sourced service adds (durable delivery, resume,
 * order and idempotency guarantees), which is what the comparison prices.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { getRequestListener } from '@hono/node-server';
import { createDatabasePool } from '../../src/shared/database.js';
import { createRedis } from '../../src/shared/redis.js';
import { createRedisBroadcast } from './broadcast.js';
import { createChatService } from './chat-service.js';
import { loadBaselineConfig } from './config.js';
import { createBaselineRestApp } from './rest-app.js';
import { ensureBaselineSchema } from './schema.js';
import { createSocketServer } from './socket-server.js';

const config = loadBaselineConfig(process.env);
const pool = await createDatabasePool({ url: config.DATABASE_URL, maximumPoolSize: config.DATABASE_POOL_SIZE });
await ensureBaselineSchema(pool);
const redis = createRedis(config.REDIS_URL);

const broadcast = createRedisBroadcast({ publisher: redis, subscriber: redis.duplicate(), channel: config.REDIS_CHANNEL });
const service = createChatService({
  pool,
  redis,
  broadcast: broadcast.broadcast,
  jwtSecret: config.JWT_SECRET,
  messagesPerMinute: config.RATE_LIMIT_MESSAGES_PER_MINUTE,
});
const socketServer = createSocketServer({ service, pingIntervalMs: config.WS_PING_INTERVAL_MS });
// What other instances publish reaches the sockets held here.
await broadcast.listen((userId, text) => socketServer.deliver(userId, text));

const listener = getRequestListener(createBaselineRestApp(service).fetch);
const server = createServer((request, response) => void listener(request, response));
server.on('upgrade', (request, socket, head) => socketServer.handleUpgrade(request, socket, head));
await new Promise<void>((resolve) => server.listen(config.PORT, resolve));
process.stdout.write(`baseline listening on port ${(server.address() as AddressInfo).port}\n`);

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    if (stopping) process.exit(1);
    stopping = true;
    socketServer.close();
    server.close();
    server.closeAllConnections();
    void (async () => {
      await broadcast.close();
      await redis.quit();
      await pool.end();
      process.exit(0);
    })();
  });
}
