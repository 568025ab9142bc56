import type { RecordedEvent } from '../../src/event-store/recorded-event.js';
import type { Frame } from '../support/gateway.js';
import type { SentMessage } from './chat-clients.js';

/**
 * The frame of each event type (docs/delivery.md, "Frames"), to both participants unless a block hides it. A
 * block change frames by recipient: the one who made it, the other.
 */
type FrameTypes = string | readonly [byActor: string, toOther: string];
const DELIVERED_TYPES: ReadonlyMap<string, FrameTypes> = new Map<string, FrameTypes>([
  ['ConversationStarted', 'conversation_created'],
  ['MessageSent', 'new_message'],
  ['MessagesRead', 'messages_read'],
  ['MessageDeleted', 'message_deleted'],
  ['ConversationBlocked', ['conversation_blocked', 'conversation_removed']],
  ['ConversationUnblocked', ['conversation_unblocked', 'conversation_restored']],
]);

export type DueFrame = { readonly seq: number; readonly type: string };

/**
 * The frames `userId` must receive of one conversation, from its events in version order: one per event,
 * except that from a block by the other participant up to its unblock the user gets nothing but the block
 * (as `conversation_removed`) and the unblock (`conversation_restored`). Written here from API.md, not
 * taken from src/delivery, so that a bug there cannot move the expectation with it.
 */
export function framesDue(events: readonly RecordedEvent[], userId: number): DueFrame[] {
  const due: DueFrame[] = [];
  let blockedBy: number | null = null;
  for (const event of events) {
    const type = DELIVERED_TYPES.get(event.type);
    if (type === undefined) continue;
    if (typeof type === 'string') {
      if (blockedBy === null || blockedBy === userId) due.push({ seq: event.version, type });
      continue;
    }
    const actor = event.type === 'ConversationBlocked' ? event.data['blocked_by'] : event.data['unblocked_by'];
    blockedBy = event.type === 'ConversationBlocked' ? (actor as number) : null;
    due.push({ seq: event.version, type: actor === userId ? type[0] : type[1] });
  }
  return due;
}

/** Each conversation's events of the log, in version order. */
export function eventsByConversation(log: readonly RecordedEvent[]): Map<string, RecordedEvent[]> {
  const byConversation = new Map<string, RecordedEvent[]>();
  for (const event of log) {
    const events = byConversation.get(event.streamId) ?? [];
    events.push(event);
    byConversation.set(event.streamId, events);
  }
  for (const events of byConversation.values()) events.sort((a, b) => a.version - b.version);
  return byConversation;
}

export type PhaseReport = {
  readonly phase: string;
  readonly sent: number;
  readonly acknowledged: number;
  /** The sends not acknowledged, by answer: an error's code, or `no answer`. */
  readonly unacknowledgedBy: Readonly<Record<string, number>>;
  /** Not acknowledged (an error, or no answer), yet in the log: promised all the same. */
  readonly committedUnacknowledged: number;
  /** Exactly one MessageSent in the log. */
  readonly stored: number;
  /** Exactly one row in the read table. */
  readonly projected: number;
  /** Exactly one new_message frame at the recipient and one at the sender. */
  readonly delivered: number;
  /** Acknowledged or committed, but missing from the log, the table or either participant's frames. */
  readonly lost: number;
  /** More than one copy in the log, the table or either participant's frames. */
  readonly duplicated: number;
  /** Neither acknowledged nor committed, yet in the table or in a frame. */
  readonly phantom: number;
};

/** Accounts for every send, acknowledged or not, by its client_msg_id. */
export function auditSends(options: {
  readonly sent: readonly SentMessage[];
  readonly log: readonly RecordedEvent[];
  /** client_msg_id of every row of the messages table. */
  readonly projectedIds: readonly (string | null)[];
  readonly framesOf: (userId: number) => readonly Frame[];
}): PhaseReport[] {
  const logged = tally(options.log.filter((event) => event.type === 'MessageSent').map((event) => event.data['client_msg_id']));
  const projected = tally(options.projectedIds);
  const frameTallies = new Map<number, Map<unknown, number>>();
  const framesAt = (userId: number, clientMsgId: string): number => {
    let counts = frameTallies.get(userId);
    if (!counts) {
      const ids = options.framesOf(userId).filter((frame) => frame.type === 'new_message').map((frame) => (frame['data'] as { client_msg_id?: unknown }).client_msg_id);
      frameTallies.set(userId, (counts = tally(ids)));
    }
    return counts.get(clientMsgId) ?? 0;
  };
  const phases = [...new Set(options.sent.map((message) => message.phase))];
  return phases.map((phase) => {
    const unacknowledgedBy: Record<string, number> = {};
    const counts = { sent: 0, acknowledged: 0, committedUnacknowledged: 0, stored: 0, projected: 0, delivered: 0, lost: 0, duplicated: 0, phantom: 0 };
    for (const message of options.sent.filter((candidate) => candidate.phase === phase)) {
      const copies = [
        logged.get(message.clientMsgId) ?? 0,
        projected.get(message.clientMsgId) ?? 0,
        framesAt(message.recipient, message.clientMsgId),
        framesAt(message.sender, message.clientMsgId),
      ];
      const [inLog, inTable, atRecipient, atSender] = copies as [number, number, number, number];
      const acknowledged = message.answer.kind === 'ack';
      const promised = acknowledged || inLog > 0;
      counts.sent++;
      if (acknowledged) counts.acknowledged++;
      else {
        const answer = message.answer.kind === 'error' ? message.answer.code : message.answer.kind;
        unacknowledgedBy[answer] = (unacknowledgedBy[answer] ?? 0) + 1;
      }
      if (!acknowledged && inLog > 0) counts.committedUnacknowledged++;
      if (inLog === 1) counts.stored++;
      if (inTable === 1) counts.projected++;
      if (atRecipient === 1 && atSender === 1) counts.delivered++;
      if (promised && copies.some((count) => count === 0)) counts.lost++;
      if (copies.some((count) => count > 1)) counts.duplicated++;
      if (!promised && copies.some((count) => count > 0)) counts.phantom++;
    }
    return { phase, ...counts, unacknowledgedBy };
  });
}

export type SeqMismatch = {
  readonly userId: number;
  readonly conversationId: string;
  /** How many frames this user must receive of the conversation. */
  readonly expected: number;
  readonly received: number;
  /** Due and never received, or versions the log lacks below the stream's version. */
  readonly missing: readonly number[];
  readonly repeated: readonly number[];
  /** Received but not due: a block hides them from this user, or the log has no such version. */
  readonly unexpected: readonly number[];
  /** Received once, as the wrong frame type. */
  readonly mistyped: readonly number[];
  readonly outOfOrder: boolean;
};

/**
 * Per user and conversation: the event frames received, in arrival order and across reconnections, must be
 * exactly `framesDue` of the conversation's events in the log (seq and type), and the log's events must be
 * 1..the stream's version (`streamVersions`, from event_streams) with a frame each.
 */
export function auditSeqs(options: {
  readonly log: readonly RecordedEvent[];
  readonly streamVersions: ReadonlyMap<string, number>;
  readonly participants: ReadonlyMap<number, string>;
  readonly framesOf: (userId: number) => readonly Frame[];
}): SeqMismatch[] {
  const mismatches: SeqMismatch[] = [];
  const byConversation = eventsByConversation(options.log);
  for (const [userId, conversationId] of options.participants) {
    const events = byConversation.get(conversationId) ?? [];
    const framed = events.filter((event) => DELIVERED_TYPES.has(event.type)).map((event) => event.version);
    const due = framesDue(events, userId);
    const version = options.streamVersions.get(conversationId) ?? 0;
    const contiguous = Array.from({ length: version }, (_, index) => index + 1);
    const frames = options.framesOf(userId).filter((frame) => frame['conversation_id'] === conversationId);
    const received = frames.map((frame) => frame['seq'] as number);
    const typeOf = new Map(due.map((frame) => [frame.seq, frame.type]));
    const mistyped = frames.filter((frame) => typeOf.has(frame['seq'] as number) && typeOf.get(frame['seq'] as number) !== frame.type).map((frame) => frame['seq'] as number);
    if (sameList(received, due.map((frame) => frame.seq)) && mistyped.length === 0 && sameList(framed, contiguous)) continue;
    const seen = tally(received);
    mismatches.push({
      userId,
      conversationId,
      expected: due.length,
      received: received.length,
      missing: [...due.map((frame) => frame.seq).filter((seq) => !seen.has(seq)), ...contiguous.filter((seq) => !framed.includes(seq))].slice(0, 20),
      repeated: [...seen].filter(([, count]) => count > 1).map(([seq]) => seq).slice(0, 20),
      unexpected: received.filter((seq) => !typeOf.has(seq)).slice(0, 20),
      mistyped: mistyped.slice(0, 20),
      outOfOrder: received.some((seq, index) => index > 0 && seq < received[index - 1]!),
    });
  }
  return mismatches;
}

export function tally<T>(values: readonly T[]): Map<T, number> {
  const counts = new Map<T, number>();
  for (const value of values) counts.set(value, (counts.get(value) ?? 0) + 1);
  return counts;
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((value, index) => value === b[index]);
}
