import { sql, type CommonQueryMethods } from 'slonik';
import { z } from 'zod';
import { sleep } from '../shared/sleep.js';
import { LIVE_TABLES, type ReadTables } from './conversation/apply-conversation-events.js';

/**
 * Consistent reads for every reader, with no help from the client.
 *
 * Guarantee: when `awaitReadConsistency` resolves `true`, the read tables have applied, for every
 * conversation in scope, at least the head version the log had when it was called. So a query made after it
 * reflects every event committed before the query arrived: any command acknowledged to anyone (its event
 * commits before the answer) and any event already pushed to the caller as a frame (the relay reads only
 * committed events). `false` means the read tables were still behind at the deadline: the caller must not
 * answer from them.
 *
 * How: the log keeps each conversation's head in `event_streams.version` (written in the append's
 * transaction); the read tables keep what they applied in `discussion.version` (written with the rows, in one
 * transaction). One statement compares the two for the caller's conversations; only when something is behind
 * does the wait poll `discussion` for those conversations, towards the heads read once at the start (so a
 * steady stream of later sends cannot keep moving the goal). A conversation with an event recorded in
 * `projection_failures` stays behind until it is fixed and replayed: its reads keep answering `false`.
 */

/** Whose conversations a query reads: one of the caller's, or all of them (the list). */
export type ReadScope = { readonly userId: number; readonly conversationId?: string };

/** conversation id -> the log's head version, for conversations whose read rows are behind it. */
export type ReadTargets = ReadonlyMap<string, number>;

const targetRow = z.object({ id: z.string(), version: z.number().int() });
const appliedRow = targetRow;

/** Polling backoff: short at first (a projector batch lands within milliseconds), capped so a wait stays cheap. */
const FIRST_DELAY_MS = 2;
const MAX_DELAY_MS = 25;

/**
 * The caller's conversations in `scope` whose head in the log is above the version the read tables applied
 * (a conversation not projected yet counts as applied 0), with their heads: one statement. The pairs table
 * is joined on the caller, so a conversation id that is not the caller's yields nothing (and costs an index
 * probe only).
 */
export async function readConsistencyTargets(
  connection: CommonQueryMethods,
  scope: ReadScope,
  tables: ReadTables = LIVE_TABLES,
): Promise<ReadTargets> {
  const discussion = sql.identifier([tables.discussion]);
  const { userId, conversationId } = scope;
  // The primary key serves user_low, conversation_pairs_user_high_idx serves user_high.
  const mine =
    conversationId === undefined
      ? sql.fragment`
          SELECT conversation_id FROM conversation_pairs WHERE user_low = ${userId}
          UNION ALL
          SELECT conversation_id FROM conversation_pairs WHERE user_high = ${userId}`
      : sql.fragment`
          SELECT conversation_id FROM conversation_pairs
          WHERE conversation_id = ${conversationId} AND (user_low = ${userId} OR user_high = ${userId})`;
  const rows = await connection.any(sql.type(targetRow)`
    SELECT head.stream_id AS id, head.version
    FROM (${mine}) AS mine
    JOIN event_streams AS head ON head.stream_id = mine.conversation_id
    LEFT JOIN ${discussion} AS applied ON applied.id = mine.conversation_id
    WHERE head.version > coalesce(applied.version, 0)`);
  return new Map(rows.map((row) => [row.id, row.version]));
}

/**
 * Waits until the read tables have applied at least `targets` (conversation id -> version), polling only
 * `discussion` with a short backoff, for at most `timeoutMs`.
 * @returns false when some conversation was still behind at the deadline.
 */
export async function waitUntilApplied(
  connection: CommonQueryMethods,
  targets: ReadTargets,
  options: { readonly timeoutMs: number; readonly tables?: ReadTables },
): Promise<boolean> {
  const table = sql.identifier([(options.tables ?? LIVE_TABLES).discussion]);
  let behind = [...targets.keys()];
  const deadline = Date.now() + options.timeoutMs;
  for (let delayMs = FIRST_DELAY_MS; behind.length > 0; delayMs = Math.min(delayMs * 2, MAX_DELAY_MS)) {
    const left = deadline - Date.now();
    if (left <= 0) return false;
    await sleep(Math.min(delayMs, left));
    const rows = await connection.any(sql.type(appliedRow)`
      SELECT id, version FROM ${table} WHERE id = ANY(${sql.array(behind, 'text')})`);
    const applied = new Map(rows.map((row) => [row.id, row.version]));
    behind = behind.filter((id) => (applied.get(id) ?? 0) < (targets.get(id) ?? 0));
  }
  return true;
}

/**
 * Reads the targets of `scope` at once, then waits for them (see the module's guarantee). When nothing is
 * behind, the common case, this is one statement.
 */
export async function awaitReadConsistency(
  connection: CommonQueryMethods,
  scope: ReadScope,
  options: { readonly timeoutMs: number; readonly tables?: ReadTables },
): Promise<boolean> {
  const targets = await readConsistencyTargets(connection, scope, options.tables);
  return targets.size === 0 || waitUntilApplied(connection, targets, options);
}
