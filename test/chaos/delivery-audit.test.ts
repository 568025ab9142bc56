import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../src/event-store/recorded-event.js';
import type { Frame } from '../support/gateway.js';
import type { SendAnswer, SentMessage } from './chat-clients.js';
import { auditSends, auditSeqs, framesDue } from './delivery-audit.js';

const CONVERSATION = 'c1';

function event(version: number, type: string, clientMsgId?: string, data: Record<string, unknown> = {}): RecordedEvent {
  return {
    transactionId: BigInt(version),
    globalPosition: BigInt(version),
    streamId: CONVERSATION,
    version,
    eventId: `e${version}`,
    type,
    data: clientMsgId === undefined ? data : { client_msg_id: clientMsgId, ...data },
    metadata: {},
    createdAt: 0,
  };
}

function typed(type: string, seq: number): Frame {
  return { type, conversation_id: CONVERSATION, seq };
}

function frame(seq: number, clientMsgId?: string): Frame {
  return clientMsgId === undefined
    ? { type: 'conversation_created', conversation_id: CONVERSATION, seq }
    : { type: 'new_message', conversation_id: CONVERSATION, seq, data: { client_msg_id: clientMsgId } };
}

function send(clientMsgId: string, answer: SendAnswer): SentMessage {
  return { phase: 'p', conversationId: CONVERSATION, sender: 1, recipient: 2, clientMsgId, content: `text of ${clientMsgId}`, answer };
}

const ack: SendAnswer = { kind: 'ack', at: 0 };
const noAnswer: SendAnswer = { kind: 'no answer' };

describe('auditSends', () => {
  const log = [event(1, 'ConversationStarted'), event(2, 'MessageSent', 'a'), event(3, 'MessageSent', 'b')];
  const everywhere = [frame(1), frame(2, 'a'), frame(3, 'b')];

  it('counts a committed send without an ack as promised: delivered when it is everywhere once', () => {
    const [row] = auditSends({ sent: [send('a', ack), send('b', noAnswer)], log, projectedIds: ['a', 'b'], framesOf: () => everywhere });
    expect(row).toEqual({
      phase: 'p',
      sent: 2,
      acknowledged: 1,
      committedUnacknowledged: 1,
      stored: 2,
      projected: 2,
      delivered: 2,
      lost: 0,
      duplicated: 0,
      phantom: 0,
      unacknowledgedBy: { 'no answer': 1 },
    });
  });

  it('counts a committed send without an ack as lost when one participant never got its frame', () => {
    const framesOf = (user: number) => (user === 2 ? everywhere.slice(0, 2) : everywhere);
    const [row] = auditSends({ sent: [send('a', ack), send('b', noAnswer)], log, projectedIds: ['a', 'b'], framesOf });
    expect(row).toMatchObject({ delivered: 1, lost: 1 });
  });

  it('counts an acknowledged send missing from the log as lost, and one in the table twice as duplicated', () => {
    const [row] = auditSends({ sent: [send('a', ack), send('x', ack)], log, projectedIds: ['a', 'a', 'b'], framesOf: () => everywhere });
    expect(row).toMatchObject({ stored: 1, projected: 0, lost: 1, duplicated: 1 });
  });

  it('counts a send neither acknowledged nor committed that shows up in a frame as a phantom', () => {
    const [row] = auditSends({
      sent: [send('x', { kind: 'error', code: 'unavailable', at: 0 })],
      log,
      projectedIds: ['a', 'b'],
      framesOf: () => [...everywhere, frame(4, 'x')],
    });
    expect(row).toMatchObject({ acknowledged: 0, committedUnacknowledged: 0, lost: 0, phantom: 1 });
  });
});

describe('auditSeqs', () => {
  const log = [event(1, 'ConversationStarted'), event(2, 'MessageSent', 'a'), event(3, 'MessageSent', 'b')];
  const audit = (frames: Frame[], version = 3) =>
    auditSeqs({ log, streamVersions: new Map([[CONVERSATION, version]]), participants: new Map([[1, CONVERSATION]]), framesOf: () => frames });

  it('accepts exactly 1..version in order', () => {
    expect(audit([frame(1), frame(2, 'a'), frame(3, 'b')])).toEqual([]);
  });

  it('reports a gap, a repeat and a reordering', () => {
    expect(audit([frame(1), frame(3, 'b')])).toMatchObject([{ missing: [2], repeated: [], outOfOrder: false }]);
    expect(audit([frame(1), frame(2, 'a'), frame(2, 'a'), frame(3, 'b')])).toMatchObject([{ missing: [], repeated: [2] }]);
    expect(audit([frame(1), frame(3, 'b'), frame(2, 'a')])).toMatchObject([{ missing: [], outOfOrder: true }]);
  });

  it('reports a log that does not reach the stream version', () => {
    expect(audit([frame(1), frame(2, 'a'), frame(3, 'b')], 4)).toMatchObject([{ expected: 3, received: 3, missing: [4] }]);
  });

  it('reports a frame of the wrong type', () => {
    expect(audit([frame(1), typed('messages_read', 2), frame(3, 'b')])).toMatchObject([{ missing: [], mistyped: [2] }]);
  });

  describe('across a block', () => {
    // User 1 blocks at 3 and unblocks at 6; 4 and 5 happen while blocked.
    const blocked = [
      event(1, 'ConversationStarted'),
      event(2, 'MessageSent', 'a'),
      event(3, 'ConversationBlocked', undefined, { blocked_by: 1, blocked_user_id: 2 }),
      event(4, 'MessageDeleted', undefined, { message_id: 'm1' }),
      event(5, 'MessagesRead'),
      event(6, 'ConversationUnblocked', undefined, { unblocked_by: 1, unblocked_user_id: 2 }),
      event(7, 'MessageSent', 'b'),
    ];
    const auditUser = (userId: number, frames: Frame[]) =>
      auditSeqs({ log: blocked, streamVersions: new Map([[CONVERSATION, 7]]), participants: new Map([[userId, CONVERSATION]]), framesOf: () => frames });
    const blocker = [frame(1), frame(2, 'a'), typed('conversation_blocked', 3), typed('message_deleted', 4), typed('messages_read', 5), typed('conversation_unblocked', 6), frame(7, 'b')];
    const blockedUser = [frame(1), frame(2, 'a'), typed('conversation_removed', 3), typed('conversation_restored', 6), frame(7, 'b')];

    it('expects every event at the blocker, and at the blocked user everything but what happened while blocked', () => {
      expect(framesDue(blocked, 1).map((due) => due.seq)).toEqual([1, 2, 3, 4, 5, 6, 7]);
      expect(framesDue(blocked, 2)).toEqual([
        { seq: 1, type: 'conversation_created' },
        { seq: 2, type: 'new_message' },
        { seq: 3, type: 'conversation_removed' },
        { seq: 6, type: 'conversation_restored' },
        { seq: 7, type: 'new_message' },
      ]);
      expect(auditUser(1, blocker)).toEqual([]);
      expect(auditUser(2, blockedUser)).toEqual([]);
    });

    it('reports a frame sent to the blocked user while blocked, and one the blocker missed', () => {
      expect(auditUser(2, [...blockedUser.slice(0, 3), typed('message_deleted', 4), ...blockedUser.slice(3)])).toMatchObject([{ unexpected: [4] }]);
      expect(auditUser(1, blocker.filter((received) => received['seq'] !== 5))).toMatchObject([{ missing: [5] }]);
    });

    it('reports the block framed for the wrong side', () => {
      expect(auditUser(2, blockedUser.map((received) => (received['seq'] === 3 ? typed('conversation_blocked', 3) : received)))).toMatchObject([
        { mistyped: [3] },
      ]);
    });
  });
});
