/**
 * Benchmark of the write side and the relay, on private servers it starts itself (durable Postgres: fsync on).
 *
 *   npm run bench:event-log [-- --seconds 10 --rate 500]
 *
 * 1. Append throughput: SendMessage commands (load, decide, append, commit) per second with 1, 8 and 32
 *    concurrent writers, each on its own conversations; then batches of 10 and 100 sends in one transaction
 *    (`sendMessages`, what the gateway does under load) from one writer.
 * 2. Relay lag: at a fixed rate, the time from an append's COMMIT returning to the event being delivered from
 *    JetStream by an ordered consumer (an upper bound of commit -> publish ack), p50/p99/max.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { cpus, tmpdir, totalmem } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { connect } from 'nats';
import {
  sendMessage,
  sendMessages,
  startConversation,
  type CommandDeps,
} from '../src/commands/conversation/conversation-commands.js';
import { eventMessage } from '../src/relay/event-message.js';
import { createDatabasePool } from '../src/shared/database.js';
import { migrate } from '../src/shared/migrate.js';
import { sleep } from '../src/shared/sleep.js';
import { monotonicUlids } from '../src/shared/ulid.js';
import { getFreePorts } from '../stack/free-port.js';
import { startNatsServer } from '../stack/nats-server.js';
import { roleCredentialsEnv, runUsers } from '../stack/nats-permissions.js';
import { startEmbeddedPostgres } from '../stack/postgres.js';
import { createSupervisor } from '../stack/supervisor.js';

const { values: args } = parseArgs({
  options: { seconds: { type: 'string', default: '10' }, rate: { type: 'string', default: '500' } },
});
const seconds = Number(args.seconds);
const rate = Number(args.rate);

const root = await mkdtemp(path.join(tmpdir(), 'matcha-bench-'));
await chmod(root, 0o755); // Postgres runs as the postgres user when we are root
const [pgPort = 0, natsPort = 0] = await getFreePorts(2);
const postgres = await startEmbeddedPostgres({ dataDir: path.join(root, 'postgres'), port: pgPort, durable: true });
// The relay logs in as its own user, as under `npm start`; this script as the operator.
const natsAuth = runUsers();
const nats = await startNatsServer({ storeDir: path.join(root, 'nats'), port: natsPort, users: natsAuth.users });
await postgres.createDatabase('bench');
const databaseUrl = postgres.url('bench');
await migrate(databaseUrl);

const pool = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 40 });
const deps: CommandDeps = { pool, clock: () => new Date(), newId: monotonicUlids() };
let nextUser = 1;

async function newConversation(): Promise<{ id: string; sender: number }> {
  const [a, b] = [nextUser++, nextUser++];
  const { conversationId } = await startConversation(deps, { initiatorId: a, otherUserId: b });
  return { id: conversationId, sender: a };
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

console.log(`machine: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, ${Math.round(totalmem() / 2 ** 30)} GiB`);
console.log(`postgres durable (fsync on), ${seconds} s per run\n`);

//// 1. Append throughput

console.log('append throughput (SendMessage commands, each writer on its own 10 conversations)');
for (const writers of [1, 8, 32]) {
  const conversations = await Promise.all(
    Array.from({ length: writers }, () => Promise.all(Array.from({ length: 10 }, newConversation))),
  );
  const deadline = Date.now() + seconds * 1_000;
  const counts = await Promise.all(
    conversations.map(async (mine) => {
      let sent = 0;
      while (Date.now() < deadline) {
        const conversation = mine[sent % mine.length]!;
        await sendMessage(deps, { conversationId: conversation.id, senderId: conversation.sender, content: `m${sent}` });
        sent++;
      }
      return sent;
    }),
  );
  const total = counts.reduce((sum, count) => sum + count, 0);
  console.log(`  ${String(writers).padStart(2)} writers: ${Math.round(total / seconds)} events/s (${total} in ${seconds} s)`);
}

console.log('\nbatched appends (sendMessages: one transaction per batch, as the gateway groups sends; one writer)');
for (const batchSize of [10, 100]) {
  const conversations = await Promise.all(Array.from({ length: 100 }, newConversation));
  const deadline = Date.now() + seconds * 1_000;
  let sent = 0;
  while (Date.now() < deadline) {
    const batch = Array.from({ length: batchSize }, (_, index) => {
      const conversation = conversations[(sent + index) % conversations.length]!;
      return { conversationId: conversation.id, senderId: conversation.sender, content: `b${sent + index}` };
    });
    const results = await sendMessages(deps, batch);
    if (results.some((result) => result.status === 'rejected')) throw new Error('a batched send was refused');
    sent += batchSize;
  }
  console.log(`  batches of ${String(batchSize).padStart(3)}: ${Math.round(sent / seconds)} events/s (${sent} in ${seconds} s)`);
}

//// 2. Relay lag

const prefix = 'bench';
const streamName = 'BENCH_EVENTS';
const supervisor = createSupervisor({ cwd: path.resolve(import.meta.dirname, '..'), report: (line) => void process.stderr.write(`${line}\n`) });
supervisor.start(
  { name: 'relay', entry: 'src/relay/main.ts' },
  {
    ...process.env,
    DATABASE_URL: databaseUrl,
    NATS_URL: nats.url,
    NATS_STREAM: streamName,
    NATS_SUBJECT_PREFIX: prefix,
    ...roleCredentialsEnv('relay', natsAuth.passwords.relay),
    LOG_LEVEL: 'warn',
  },
);
const nc = await connect({ servers: nats.url, user: 'operator', pass: natsAuth.operatorPassword });
const jsm = await nc.jetstreamManager();
while (!(await jsm.streams.info(streamName).then(() => true, () => false))) await sleep(100);
// Let the relay publish the backlog of part 1 before measuring.
let backlog = -1;
while (backlog !== (backlog = (await jsm.streams.info(streamName)).state.messages)) await sleep(1_000);

// Both sides are timed and matched at the end: a delivery may be seen before the command's promise resolves.
const committedAt = new Map<string, number>();
const deliveredAt = new Map<string, number>();
const consumer = await nc.jetstream().consumers.get(streamName, { opt_start_time: new Date().toISOString() });
const messages = await consumer.consume();
const consuming = (async () => {
  for await (const message of messages) {
    const { data } = eventMessage.parse(message.json());
    if (typeof data['message_id'] === 'string') deliveredAt.set(data['message_id'], performance.now());
  }
})();

const conversations = await Promise.all(Array.from({ length: 50 }, newConversation));
const total = rate * seconds;
const started = performance.now();
const sends: Promise<void>[] = [];
for (let i = 0; i < total; i++) {
  const due = started + (i * 1_000) / rate;
  const wait = due - performance.now();
  if (wait > 1) await sleep(wait);
  const conversation = conversations[i % conversations.length]!;
  sends.push(
    sendMessage(deps, { conversationId: conversation.id, senderId: conversation.sender, content: `lag ${i}` }).then(
      (message) => void committedAt.set(message.id, performance.now()),
    ),
  );
}
await Promise.all(sends);
const achieved = total / ((performance.now() - started) / 1_000);
const allDelivered = () => [...committedAt.keys()].every((id) => deliveredAt.has(id));
for (let waited = 0; !allDelivered() && waited < 20_000; waited += 100) await sleep(100);
await messages.close();
await consuming;

const lags = [...committedAt].flatMap(([id, at]) => {
  const delivered = deliveredAt.get(id);
  return delivered === undefined ? [] : [Math.max(0, delivered - at)];
});
const sorted = lags.sort((a, b) => a - b);
console.log(`\nrelay lag at ${rate} events/s (achieved ${Math.round(achieved)}/s, ${lags.length}/${total} measured)`);
console.log(
  `  commit -> delivered from JetStream: p50 ${percentile(sorted, 50).toFixed(1)} ms, p99 ${percentile(sorted, 99).toFixed(1)} ms, max ${(sorted.at(-1) ?? Number.NaN).toFixed(1)} ms`,
);

await nc.close();
await supervisor.stopAll();
await pool.end();
await nats.close();
await postgres.close();
await rm(root, { recursive: true, force: true });
