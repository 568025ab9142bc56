import type { RecordedEvent } from '../../src/event-store/recorded-event.js';
import type { Frame } from '../support/gateway.js';
import type { BlockToggle, DeleteRequest, RestAnswer } from './chat-commands.js';
import { eventsByConversation, framesDue, tally } from './delivery-audit.js';

/**
 * The answers a delete or a block change may get under a fault besides its 200: none (the gateway is down
 * or too slow) or a 503 the client retries (`unavailable`: Postgres or Redis is down; `read_model_behind`:
 * the read tables did not catch up in time). Anything else, a 5xx above all, is a bug.
 */
const ACCEPTED_ANSWERS = new Set(['200', 'no answer', '503 unavailable', '503 read_model_behind']);

const labelOf = (answer: RestAnswer): string => (answer.status === 'no answer' ? 'no answer' : [answer.status, answer.code].filter((part) => part !== null).join(' '));

function countAnswers(answers: readonly RestAnswer[]): { readonly answers: Record<string, number>; readonly unexpected: number } {
  const counts: Record<string, number> = {};
  let unexpected = 0;
  for (const label of answers.map(labelOf)) {
    counts[label] = (counts[label] ?? 0) + 1;
    if (!ACCEPTED_ANSWERS.has(label)) unexpected++;
  }
  return { answers: counts, unexpected };
}

export type DeleteReport = {
  readonly phase: string;
  readonly requested: number;
  /** Answered 200 at last. */
  readonly acknowledged: number;
  /** Every answer, retries included, by status and code. */
  readonly answers: Readonly<Record<string, number>>;
  /** Answers outside `ACCEPTED_ANSWERS`. */
  readonly unexpected: number;
  /** Not acknowledged, yet a `MessageDeleted` is in the log: promised all the same. */
  readonly committedUnacknowledged: number;
  /** Exactly one `MessageDeleted` in the log. */
  readonly logged: number;
  /** The read table's row has `msg` null and `deleted_at` set. */
  readonly tombstoned: number;
  /** The original `MessageSent` has `content` null, and no event of the log holds the text. */
  readonly erased: number;
  /** Exactly one `message_deleted` frame at each participant the delete is due to (both, unless a block hides it). */
  readonly delivered: number;
  /** Promised, but not logged, tombstoned, erased or delivered. */
  readonly lost: number;
  /** More than one `MessageDeleted`, or more `message_deleted` frames at a participant than due. */
  readonly duplicated: number;
  /** Neither acknowledged nor logged, yet erased, tombstoned or framed. */
  readonly phantom: number;
};

/** A message row of the read table. */
export type MessageRow = { readonly id: unknown; readonly msg: unknown; readonly deleted_at: unknown };

/** Accounts for every delete for everyone, acknowledged or not, by its message id. */
export function auditDeletes(options: {
  readonly requests: readonly DeleteRequest[];
  readonly log: readonly RecordedEvent[];
  readonly messageRows: readonly MessageRow[];
  readonly framesOf: (userId: number) => readonly Frame[];
}): DeleteReport[] {
  const deletes = new Map<unknown, RecordedEvent[]>();
  const originals = new Map<unknown, RecordedEvent>();
  const contents = new Set<unknown>();
  for (const event of options.log) {
    if (event.type === 'MessageDeleted') deletes.set(event.data['message_id'], [...(deletes.get(event.data['message_id']) ?? []), event]);
    if (event.type !== 'MessageSent') continue;
    originals.set(event.data['message_id'], event);
    contents.add(event.data['content']);
  }
  const rows = new Map(options.messageRows.map((row) => [row.id, row]));
  const byConversation = eventsByConversation(options.log);
  const dueTo = (userId: number, event: RecordedEvent): number =>
    framesDue(byConversation.get(event.streamId) ?? [], userId).some((frame) => frame.seq === event.version) ? 1 : 0;
  const deleteFrames = new Map<number, Map<unknown, number>>();
  const framesAt = (userId: number, messageId: string): number => {
    let counts = deleteFrames.get(userId);
    if (!counts) {
      const frames = options.framesOf(userId).filter((frame) => frame.type === 'message_deleted');
      deleteFrames.set(userId, (counts = tally(frames.map((frame) => (frame['data'] as { id?: unknown }).id))));
    }
    return counts.get(messageId) ?? 0;
  };

  const phases = [...new Set(options.requests.map((request) => request.phase))];
  return phases.map((phase) => {
    const mine = options.requests.filter((request) => request.phase === phase);
    const counts = { requested: 0, acknowledged: 0, committedUnacknowledged: 0, logged: 0, tombstoned: 0, erased: 0, delivered: 0, lost: 0, duplicated: 0, phantom: 0 };
    for (const request of mine) {
      const acknowledged = request.answers.some((answer) => answer.status === 200);
      const logged = deletes.get(request.messageId) ?? [];
      const promised = acknowledged || logged.length > 0;
      const row = rows.get(request.messageId);
      const tombstoned = row !== undefined && row.msg === null && row.deleted_at !== null;
      const original = originals.get(request.messageId);
      const erased = original !== undefined && original.data['content'] === null && !contents.has(request.content);
      const intact = original?.data['content'] === request.content && row?.msg === request.content && row.deleted_at === null;
      const received = [framesAt(request.sender, request.messageId), framesAt(request.recipient, request.messageId)];
      const due = logged[0] ? [dueTo(request.sender, logged[0]), dueTo(request.recipient, logged[0])] : [0, 0];
      counts.requested++;
      if (acknowledged) counts.acknowledged++;
      else if (logged.length > 0) counts.committedUnacknowledged++;
      if (logged.length === 1) counts.logged++;
      if (tombstoned) counts.tombstoned++;
      if (erased) counts.erased++;
      const delivered = promised && received.every((count, index) => count === due[index]);
      if (delivered) counts.delivered++;
      if (promised && (logged.length === 0 || !tombstoned || !erased || !delivered)) counts.lost++;
      if (logged.length > 1 || received.some((count, index) => count > due[index]!)) counts.duplicated++;
      if (!promised && (!intact || received.some((count) => count > 0))) counts.phantom++;
    }
    return { phase, ...counts, ...countAnswers(mine.flatMap((request) => request.answers)) };
  });
}

export type BlockPhaseReport = {
  readonly phase: string;
  readonly toggles: number;
  /** Answered 200 at last. */
  readonly acknowledged: number;
  readonly answers: Readonly<Record<string, number>>;
  /** Answers outside `ACCEPTED_ANSWERS`. */
  readonly unexpected: number;
  /** A 200 whose Conversation does not show the change asked for (`blocked_by` the blocker, or null). */
  readonly wrongAnswer: number;
};

/** Every block and unblock request, per phase. */
export function auditBlockToggles(toggles: readonly BlockToggle[]): BlockPhaseReport[] {
  const phases = [...new Set(toggles.map((toggle) => toggle.phase))];
  return phases.map((phase) => {
    const mine = toggles.filter((toggle) => toggle.phase === phase);
    const acknowledged = mine.filter((toggle) => toggle.answers.some((answer) => answer.status === 200));
    const wrongAnswer = acknowledged.filter((toggle) => toggle.blockedBy !== (toggle.action === 'block' ? toggle.blocker : null)).length;
    return { phase, toggles: mine.length, acknowledged: acknowledged.length, wrongAnswer, ...countAnswers(mine.flatMap((toggle) => toggle.answers)) };
  });
}

export type BlockedConversationReport = {
  readonly conversationId: string;
  readonly blocks: number;
  readonly unblocks: number;
  /** Messages in the log: sent while the conversation was not blocked. */
  readonly messages: number;
  /** `MessageSent` between a `ConversationBlocked` and the next `ConversationUnblocked`: must be 0. */
  readonly sentWhileBlocked: number;
  /** A block of a blocked conversation or an unblock of an unblocked one: must be 0. */
  readonly outOfTurn: number;
  /** Events between a block and its unblock (the blocker's deletes, reads): the blocked user must get none. */
  readonly hidden: number;
};

/** What the log holds of a conversation blocked and unblocked in turn. */
export function auditBlockedConversation(log: readonly RecordedEvent[], conversationId: string): BlockedConversationReport {
  const report = { conversationId, blocks: 0, unblocks: 0, messages: 0, sentWhileBlocked: 0, outOfTurn: 0, hidden: 0 };
  let blocked = false;
  for (const event of eventsByConversation(log).get(conversationId) ?? []) {
    if (event.type === 'ConversationBlocked' || event.type === 'ConversationUnblocked') {
      const blocks = event.type === 'ConversationBlocked';
      if (blocks === blocked) report.outOfTurn++;
      blocked = blocks;
      if (blocks) report.blocks++;
      else report.unblocks++;
      continue;
    }
    if (blocked) report.hidden++;
    if (event.type !== 'MessageSent') continue;
    report.messages++;
    if (blocked) report.sentWhileBlocked++;
  }
  return report;
}
