import type { DatabasePool } from 'slonik';
import { monotonicFactory } from 'ulid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { blockAt, currentBlocks, unblockedPartnersOf, unblockedPartnersOfEach } from '../../../src/commands/conversation/blocks.js';
import { conversationDecider } from '../../../src/commands/conversation/conversation.js';
import { startConversation, type CommandDeps } from '../../../src/commands/conversation/conversation-commands.js';
import { handleCommand } from '../../../src/commands/handle-command.js';
import { createDatabasePool } from '../../../src/shared/database.js';
import { createTestDatabase } from '../../support/infra.js';

let pool: DatabasePool;
let deps: CommandDeps;

beforeAll(async () => {
  pool = await createDatabasePool({ url: await createTestDatabase(), maximumPoolSize: 4 });
  deps = { pool, clock: () => new Date(), newId: monotonicFactory() };
});
afterAll(async () => {
  await pool.end();
});

const run = (conversationId: string, type: 'BlockConversation' | 'UnblockConversation', userId: number) =>
  handleCommand(pool, conversationDecider, conversationId, { type, userId, now: new Date() });

describe('block lookups on the write side', () => {
  it('give the block in force now, at each version, and the partners a presence may be shown to', async () => {
    const user = 500;
    const ids: string[] = [];
    for (const partner of [501, 502, 503]) {
      ids.push((await startConversation(deps, { initiatorId: user, otherUserId: partner })).conversationId);
    }
    const [withA, withB, withC] = ids as [string, string, string];
    await run(withA, 'BlockConversation', 501); // version 2
    await run(withB, 'BlockConversation', user); // version 2
    await run(withB, 'UnblockConversation', user); // version 3
    await run(withC, 'BlockConversation', 503); // version 2
    await run(withC, 'UnblockConversation', 503); // version 3
    await run(withC, 'BlockConversation', user); // version 4

    expect(await currentBlocks(pool, [...ids, 'missing'])).toEqual(
      new Map([
        [withA, 501],
        [withB, null],
        [withC, user],
      ]),
    );
    expect([await blockAt(pool, withC, 1), await blockAt(pool, withC, 2), await blockAt(pool, withC, 3), await blockAt(pool, withC, 4)]).toEqual([
      null,
      503,
      null,
      user,
    ]);
    expect(await unblockedPartnersOf(pool, user)).toEqual([502]);
    expect(await unblockedPartnersOf(pool, 502)).toEqual([user]);
    expect(await unblockedPartnersOf(pool, 501)).toEqual([]);
    // and in one statement for many users, each with its own (a user with none, and one named twice, included)
    const each = await unblockedPartnersOfEach(pool, [501, user, 502, 502, 9_999]);
    expect([...each].map(([id, partners]) => [id, [...partners].sort()])).toEqual([
      [501, []],
      [user, [502]],
      [502, [user]],
      [9_999, []],
    ]);
  });
});
