import { pino } from 'pino';
import type { DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  markConversationRead,
  sendMessage,
  startConversation,
  type CommandDeps,
} from '../../../src/commands/conversation/conversation-commands.js';
import { LIVE_TABLES } from '../../../src/projections/conversation/apply-conversation-events.js';
import { projectEvents } from '../../../src/projections/projector.js';
import {
  awaitReadConsistency,
  readConsistencyTargets,
  waitUntilApplied,
} from '../../../src/projections/read-consistency.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { readWholeLog } from '../../support/event-log.js';
import { createTestDatabase } from '../../support/infra.js';

/**
 * The read-consistency module against the log and the live read tables, with the projection driven by hand:
 * the test decides what is applied when.
 */

let pool: DatabasePool;
let deps: CommandDeps;
const logger = pino({ level: 'silent' });
const [alice, bob, carol, dave] = [10, 20, 5, 30];
/** alice is user_low here ... */
let withBob: string;
/** ... and user_high here. */
let withCarol: string;
/** Neither is alice's. */
let bobWithDave: string;

/** Applies the log to the live tables, up to `upTo` (conversation id -> version) where given. */
async function projectLog(upTo: ReadonlyMap<string, number> = new Map()): Promise<void> {
  const events = (await readWholeLog(pool)).filter((event) => event.version <= (upTo.get(event.streamId) ?? Infinity));
  await projectEvents({ pool, tables: LIVE_TABLES, logger }, events);
}

const send = (conversationId: string, senderId: number, content: string) => sendMessage(deps, { conversationId, senderId, content });

beforeAll(async () => {
  pool = await createDatabasePool({ url: await createTestDatabase(), maximumPoolSize: 4 });
  deps = { pool, clock: () => new Date(), newId: monotonicFactory() };
  withBob = (await startConversation(deps, { initiatorId: alice, otherUserId: bob })).conversationId;
  withCarol = (await startConversation(deps, { initiatorId: carol, otherUserId: alice })).conversationId;
  bobWithDave = (await startConversation(deps, { initiatorId: bob, otherUserId: dave })).conversationId;
});
afterAll(async () => {
  await pool.end();
});

describe('read consistency', () => {
  it('counts a conversation not projected at all as applied 0, and finds the caller\'s conversations on both pair columns', async () => {
    expect(await readConsistencyTargets(pool, { userId: alice })).toEqual(new Map([[withBob, 1], [withCarol, 1]]));
    expect(await readConsistencyTargets(pool, { userId: dave })).toEqual(new Map([[bobWithDave, 1]]));
    expect(await readConsistencyTargets(pool, { userId: alice, conversationId: withCarol })).toEqual(new Map([[withCarol, 1]]));
  });

  it('gives nothing for a conversation of others or one that does not exist: a stranger learns nothing and waits for nothing', async () => {
    expect(await readConsistencyTargets(pool, { userId: alice, conversationId: bobWithDave })).toEqual(new Map());
    expect(await readConsistencyTargets(pool, { userId: alice, conversationId: monotonicFactory()() })).toEqual(new Map());
    expect(await readConsistencyTargets(pool, { userId: 999 })).toEqual(new Map());
  });

  it('gives nothing once the read tables have applied the log, and then answers at once', async () => {
    await projectLog();
    expect(await readConsistencyTargets(pool, { userId: alice })).toEqual(new Map());
    const started = performance.now();
    expect(await awaitReadConsistency(pool, { userId: alice }, { timeoutMs: 5_000 })).toBe(true);
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('names only the conversations whose head is above the applied version, with the head, whoever wrote', async () => {
    const sent = await send(withBob, bob, 'from bob');
    await markConversationRead(deps, { conversationId: withCarol, readerId: carol });
    const read = await readConsistencyTargets(pool, { userId: alice });
    // withCarol had nothing to mark read: no event, nothing behind.
    expect(read).toEqual(new Map([[withBob, sent.version]]));
    expect(await readConsistencyTargets(pool, { userId: dave })).toEqual(new Map());
    expect(await readConsistencyTargets(pool, { userId: alice, conversationId: withCarol })).toEqual(new Map());
    await projectLog();
  });

  it('answers false after waiting its bound when nothing is applied, and true as soon as the projection arrives', async () => {
    await send(withCarol, carol, 'not projected yet');
    const started = performance.now();
    expect(await awaitReadConsistency(pool, { userId: alice, conversationId: withCarol }, { timeoutMs: 150 })).toBe(false);
    const waited = performance.now() - started;
    expect(waited).toBeGreaterThanOrEqual(145);
    expect(waited).toBeLessThan(1_000);

    const waiting = awaitReadConsistency(pool, { userId: alice }, { timeoutMs: 10_000 });
    await new Promise((resolve) => setTimeout(resolve, 50));
    await projectLog();
    expect(await waiting).toBe(true);
  });

  it('waits for the heads read at the start only: later sends do not move the goal', async () => {
    const first = await send(withBob, alice, 'target');
    const targets = await readConsistencyTargets(pool, { userId: bob, conversationId: withBob });
    expect(targets).toEqual(new Map([[withBob, first.version]]));
    // More sends commit after the targets were read; the projection reaches the target and no further.
    for (let i = 0; i < 5; i++) await send(withBob, bob, `later ${i}`);
    const waiting = waitUntilApplied(pool, targets, { timeoutMs: 10_000 });
    await projectLog(new Map([[withBob, first.version]]));
    expect(await waiting).toBe(true);
    // A new query, though, sees the new head.
    expect(await readConsistencyTargets(pool, { userId: bob, conversationId: withBob })).toEqual(new Map([[withBob, first.version + 5]]));
    await projectLog();
  });

  it('keeps a conversation behind while one of its events is not applied (as after a projection failure)', async () => {
    const stuck = await send(withCarol, alice, 'never applied');
    const head = await send(withCarol, carol, 'after it');
    await projectLog(new Map([[withCarol, stuck.version - 1]]));
    expect(await readConsistencyTargets(pool, { userId: carol })).toEqual(new Map([[withCarol, head.version]]));
    expect(await awaitReadConsistency(pool, { userId: carol }, { timeoutMs: 50 })).toBe(false);
    // The other conversations of the same user are not held back.
    expect(await awaitReadConsistency(pool, { userId: alice, conversationId: withBob }, { timeoutMs: 50 })).toBe(true);
    await projectLog();
    expect(await awaitReadConsistency(pool, { userId: carol }, { timeoutMs: 50 })).toBe(true);
  });
});
