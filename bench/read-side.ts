/**
 * Benchmark of the read side, on a private durable Postgres it starts itself.
 *
 *   npm run bench:read-side [-- --events 1000000 --page-messages 100000]
 *
 * 1. Replay rate: the log is seeded with `--events` events (conversations of 100 events: messages from both
 *    sides and read receipts, decided by the real decider, appended with the real append), then the replay
 *    rebuilds the conversation tables from it (5,000 events per transaction) and switches reads; events/s.
 * 2. Page cost: one conversation of `--page-messages` messages; a page of 50, newest first, at offset 0, at
 *    depth 90% with `offset`, and at the same depth with the `before` cursor; median and p99 of 200 runs each.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { DatabasePool } from 'slonik';
import { listMessages, type MessagePage } from '../src/projections/conversation/queries.js';
import { CONVERSATIONS_PROJECTION } from '../src/projections/read-model-generations.js';
import { rebuildProjection } from '../src/replay/rebuild-projection.js';
import { createDatabasePool } from '../src/shared/database.js';
import { migrate } from '../src/shared/migrate.js';
import { getFreePorts } from '../stack/free-port.js';
import { startEmbeddedPostgres } from '../stack/postgres.js';
import { seedConversationLog } from '../test/support/conversation-log.js';

const HELP = `npm run bench:read-side -- [--events 1000000] [--page-messages 100000]

On a private durable Postgres it starts itself:
  --events <n>          the log seeded with n events (conversations of 100), then rebuilt by the replay
                        (5,000 events per transaction, reads switched): events/s (default 1000000)
  --page-messages <n>   one conversation of n messages: a page of 50 at offset 0, at depth 90 % with
                        offset, and with the before cursor; p50 and p99 of 200 runs each (default 100000)
  --help`;

const { values: args } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    'page-messages': { type: 'string', default: '100000' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log(HELP);
  process.exit(0);
}
const totalEvents = Number(args.events);
const pageMessages = Number(args['page-messages']);

const root = await mkdtemp(path.join(tmpdir(), 'matcha-bench-'));
await chmod(root, 0o755); // Postgres runs as the postgres user when we are root
const [pgPort = 0] = await getFreePorts(1);
const postgres = await startEmbeddedPostgres({ dataDir: path.join(root, 'postgres'), port: pgPort, durable: true });

const silentProgress = () => ({ start() {}, advance() {}, stop() {} });

async function database(name: string): Promise<DatabasePool> {
  await postgres.createDatabase(name);
  await migrate(postgres.url(name));
  return createDatabasePool({ url: postgres.url(name), maximumPoolSize: 6 });
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB`);
console.log('postgres durable (fsync on)\n');

try {
  //// 1. Replay rate
  const replayPool = await database('replay');
  const perConversation = 100;
  let started = performance.now();
  await seedConversationLog(replayPool, {
    conversations: Math.ceil(totalEvents / perConversation),
    eventsPerConversation: perConversation,
    firstUserId: 1,
  });
  console.log(`seeded ${totalEvents} events in ${((performance.now() - started) / 1_000).toFixed(1)} s`);
  started = performance.now();
  const result = await rebuildProjection(
    { pool: replayPool, progress: silentProgress },
    { projection: CONVERSATIONS_PROJECTION, batchSize: 5_000, verify: false, switchReads: true, force: false, restart: false },
  );
  console.log(
    `replay: ${result.events} events in ${result.seconds.toFixed(1)} s = ${Math.round(result.events / result.seconds)} events/s ` +
      `(generation ${result.generation}, reads switched)`,
  );
  await replayPool.end();

  //// 2. Page cost at depth
  const pagePool = await database('pages');
  const [conversation] = await seedConversationLog(pagePool, {
    conversations: 1,
    eventsPerConversation: pageMessages + 1,
    firstUserId: 1,
    readEvery: 0,
  });
  await rebuildProjection(
    { pool: pagePool, progress: silentProgress },
    { projection: CONVERSATIONS_PROJECTION, batchSize: 5_000, verify: false, switchReads: true, force: false, restart: false },
  );
  const { id, users } = conversation!;
  const depth = Math.floor(pageMessages * 0.9);
  const atDepth = await listMessages(pagePool, users[0], id, { limit: 1, offset: depth - 1 });
  if (!Array.isArray(atDepth) || !atDepth[0]) throw new Error('no message at depth');
  const pages: [string, MessagePage][] = [
    ['offset 0', { limit: 50, offset: 0 }],
    [`offset ${depth}`, { limit: 50, offset: depth }],
    [`cursor at depth ${depth}`, { limit: 50, before: atDepth[0].id }],
  ];
  console.log(`\npage of 50 messages, newest first, in a ${pageMessages}-message conversation (200 runs each)`);
  for (const [label, page] of pages) {
    const times: number[] = [];
    for (let run = 0; run < 220; run++) {
      const t0 = performance.now();
      const rows = await listMessages(pagePool, users[0], id, page);
      if (!Array.isArray(rows) || rows.length !== 50) throw new Error(`${label}: expected 50 messages`);
      if (run >= 20) times.push(performance.now() - t0); // the first runs warm the cache
    }
    times.sort((a, b) => a - b);
    console.log(`  ${label.padEnd(24)} p50 ${percentile(times, 50).toFixed(2)} ms, p99 ${percentile(times, 99).toFixed(2)} ms`);
  }
  await pagePool.end();
} finally {
  await postgres.close();
  await rm(root, { recursive: true, force: true });
}
