import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../src/event-store/recorded-event.js';
import type { Frame } from '../support/gateway.js';
import type { BlockToggle, DeleteRequest, RestAnswer } from './chat-commands.js';
import { auditBlockedConversation, auditBlockToggles, auditDeletes, type MessageRow } from './command-audit.js';

const CONVERSATION = 'c1';

function event(version: number, type: string, data: Record<string, unknown> = {}): RecordedEvent {
  return {
    transactionId: BigInt(version),
    globalPosition: BigInt(version),
    streamId: CONVERSATION,
    version,
    eventId: `e${version}`,
    type,
    data,
    metadata: {},
    createdAt: 0,
  };
}

const ok: RestAnswer = { status: 200, code: null };
const noAnswer: RestAnswer = { status: 'no answer', code: null };
const unavailable: RestAnswer = { status: 503, code: 'unavailable' };

describe('auditDeletes', () => {
  const request = (messageId: string, answers: RestAnswer[]): DeleteRequest => ({
    phase: 'p',
    conversationId: CONVERSATION,
    sender: 1,
    recipient: 2,
    messageId,
    content: `text of ${messageId}`,
    answers,
  });
  const sent = (version: number, messageId: string, content: string | null) => event(version, 'MessageSent', { message_id: messageId, content });
  const deleted = (version: number, messageId: string) => event(version, 'MessageDeleted', { message_id: messageId });
  const deleteFrame = (seq: number, messageId: string): Frame => ({ type: 'message_deleted', conversation_id: CONVERSATION, seq, data: { id: messageId } });
  const tombstone = (id: string): MessageRow => ({ id, msg: null, deleted_at: '2026-01-01T00:00:00.000Z' });
  const intact = (id: string): MessageRow => ({ id, msg: `text of ${id}`, deleted_at: null });

  const log = [event(1, 'ConversationStarted'), sent(2, 'm1', null), sent(3, 'm2', 'text of m2'), deleted(4, 'm1')];
  const bothGotIt = () => [deleteFrame(4, 'm1')];

  it('accounts a delete logged once, tombstoned, erased and framed to both, and one never made', () => {
    const [row] = auditDeletes({
      requests: [request('m1', [noAnswer, unavailable, ok]), request('m2', [unavailable, noAnswer])],
      log,
      messageRows: [tombstone('m1'), intact('m2')],
      framesOf: bothGotIt,
    });
    expect(row).toEqual({
      phase: 'p',
      requested: 2,
      acknowledged: 1,
      committedUnacknowledged: 0,
      logged: 1,
      tombstoned: 1,
      erased: 1,
      delivered: 1,
      lost: 0,
      duplicated: 0,
      phantom: 0,
      answers: { '200': 1, 'no answer': 2, '503 unavailable': 2 },
      unexpected: 0,
    });
  });

  it('counts an answer other than 200, none or a 503 unavailable / read_model_behind as unexpected', () => {
    const [row] = auditDeletes({
      requests: [request('m1', [{ status: 500, code: 'internal' }, { status: 503, code: 'read_model_behind' }, ok])],
      log,
      messageRows: [tombstone('m1')],
      framesOf: bothGotIt,
    });
    expect(row).toMatchObject({ unexpected: 1, lost: 0 });
  });

  it('counts an acknowledged delete whose text stays in the log as lost', () => {
    const unerased = [event(1, 'ConversationStarted'), sent(2, 'm1', 'text of m1'), deleted(3, 'm1')];
    const [row] = auditDeletes({ requests: [request('m1', [ok])], log: unerased, messageRows: [tombstone('m1')], framesOf: () => [deleteFrame(3, 'm1')] });
    expect(row).toMatchObject({ erased: 0, lost: 1 });
  });

  it('counts an acknowledged delete whose row still has its text, or whose frame one participant lacks, as lost', () => {
    const notTombstoned = auditDeletes({ requests: [request('m1', [ok])], log, messageRows: [intact('m1')], framesOf: bothGotIt });
    expect(notTombstoned).toMatchObject([{ tombstoned: 0, lost: 1 }]);
    const senderOnly = auditDeletes({ requests: [request('m1', [ok])], log, messageRows: [tombstone('m1')], framesOf: (user) => (user === 1 ? bothGotIt() : []) });
    expect(senderOnly).toMatchObject([{ delivered: 0, lost: 1 }]);
  });

  it('counts a delete committed without an answer as promised, and a second MessageDeleted or frame as duplicated', () => {
    const [committed] = auditDeletes({ requests: [request('m1', [noAnswer])], log, messageRows: [tombstone('m1')], framesOf: bothGotIt });
    expect(committed).toMatchObject({ committedUnacknowledged: 1, lost: 0 });
    const [twice] = auditDeletes({ requests: [request('m1', [ok])], log: [...log, deleted(5, 'm1')], messageRows: [tombstone('m1')], framesOf: bothGotIt });
    expect(twice).toMatchObject({ logged: 0, duplicated: 1 });
    const [repeated] = auditDeletes({ requests: [request('m1', [ok])], log, messageRows: [tombstone('m1')], framesOf: () => [deleteFrame(4, 'm1'), deleteFrame(4, 'm1')] });
    expect(repeated).toMatchObject({ duplicated: 1 });
  });

  it('expects no frame at the recipient of a delete made while the conversation is blocked against them', () => {
    const whileBlocked = [event(1, 'ConversationStarted'), sent(2, 'm1', null), event(3, 'ConversationBlocked', { blocked_by: 1 }), deleted(4, 'm1')];
    const blockerOnly = (user: number) => (user === 1 ? [deleteFrame(4, 'm1')] : []);
    expect(auditDeletes({ requests: [request('m1', [ok])], log: whileBlocked, messageRows: [tombstone('m1')], framesOf: blockerOnly })).toMatchObject([
      { delivered: 1, lost: 0, duplicated: 0 },
    ]);
    expect(auditDeletes({ requests: [request('m1', [ok])], log: whileBlocked, messageRows: [tombstone('m1')], framesOf: bothGotIt })).toMatchObject([
      { delivered: 0, duplicated: 1 },
    ]);
  });

  it('counts a delete neither acknowledged nor logged whose message was erased anyway as a phantom', () => {
    const [row] = auditDeletes({ requests: [request('m2', [unavailable])], log, messageRows: [tombstone('m2')], framesOf: bothGotIt });
    expect(row).toMatchObject({ acknowledged: 0, committedUnacknowledged: 0, phantom: 1 });
  });
});

describe('auditBlockToggles', () => {
  const toggle = (action: BlockToggle['action'], answers: RestAnswer[], blockedBy?: number | null): BlockToggle => ({
    conversationId: CONVERSATION,
    blocker: 1,
    blocked: 2,
    phase: 'p',
    action,
    answers,
    ...(blockedBy === undefined ? {} : { blockedBy }),
  });

  it('counts the answers, and a 200 that does not show the change asked for', () => {
    const toggles = [toggle('block', [noAnswer, ok], 1), toggle('unblock', [unavailable]), toggle('unblock', [ok], 1), toggle('block', [{ status: 502, code: null }])];
    expect(auditBlockToggles(toggles)).toEqual([
      { phase: 'p', toggles: 4, acknowledged: 2, wrongAnswer: 1, answers: { '200': 2, 'no answer': 1, '503 unavailable': 1, '502': 1 }, unexpected: 1 },
    ]);
  });
});

describe('auditBlockedConversation', () => {
  it('counts the messages sent while blocked and the block changes out of turn', () => {
    const log = [
      event(1, 'ConversationStarted'),
      event(2, 'MessageSent'),
      event(3, 'ConversationBlocked'),
      event(4, 'MessageSent'),
      event(5, 'ConversationBlocked'),
      event(6, 'ConversationUnblocked'),
      event(7, 'MessageSent'),
      event(8, 'ConversationUnblocked'),
      event(9, 'ConversationBlocked'),
      event(10, 'MessageDeleted'),
    ];
    expect(auditBlockedConversation(log, CONVERSATION)).toEqual({
      conversationId: CONVERSATION,
      blocks: 3,
      unblocks: 2,
      messages: 3,
      sentWhileBlocked: 1,
      outOfTurn: 2,
      hidden: 2,
    });
  });
});
