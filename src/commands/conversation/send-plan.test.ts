import { describe, expect, it } from 'vitest';
import { clientIdKey, type OriginalMessage } from './reservations.js';
import { clientIdsToLookUp, planSends, type PlannableSend, type PlannedSend } from './send-plan.js';

const original = (over: Partial<OriginalMessage> = {}): OriginalMessage => ({
  id: 'm1',
  conversationId: 'c1',
  senderId: 7,
  content: 'hi',
  deletedAt: null,
  clientMsgId: 'k1',
  sentAt: '2026-11-27T10:00:00.000Z',
  version: 2,
  ...over,
});
const taken = (...messages: OriginalMessage[]) =>
  new Map(messages.map((message) => [clientIdKey({ senderId: message.senderId, clientMsgId: message.clientMsgId }), message]));
const kinds = (plan: readonly PlannedSend[]) => plan.map((planned) => (planned.kind === 'refused' ? `refused ${planned.error.code}` : planned.kind));

describe('planSends', () => {
  it('appends sends without a client_msg_id, and those whose id nobody took', () => {
    const sends: PlannableSend[] = [
      { conversationId: 'c1', senderId: 7 },
      { conversationId: 'c1', senderId: 7, clientMsgId: null },
      { conversationId: 'c1', senderId: 7, clientMsgId: 'fresh' },
    ];
    expect(kinds(planSends(sends, taken()))).toEqual(['append', 'append', 'append']);
  });

  it('answers a retry to the same conversation with the original message', () => {
    const first = original();
    const plan = planSends([{ conversationId: 'c1', senderId: 7, clientMsgId: 'k1' }], taken(first));
    expect(plan).toEqual([{ kind: 'retry', original: first }]);
  });

  it('refuses an id the sender used for another conversation, and leaves other senders their own ids', () => {
    const sends: PlannableSend[] = [
      { conversationId: 'c2', senderId: 7, clientMsgId: 'k1' },
      { conversationId: 'c2', senderId: 8, clientMsgId: 'k1' },
    ];
    expect(kinds(planSends(sends, taken(original())))).toEqual(['refused client_msg_id_conflict', 'append']);
  });

  it('refuses a malformed id, and does not look it up', () => {
    const sends: PlannableSend[] = [
      { conversationId: 'c1', senderId: 7, clientMsgId: '' },
      { conversationId: 'c1', senderId: 7, clientMsgId: 'x'.repeat(129) },
      { conversationId: 'c1', senderId: 7, clientMsgId: 'ok' },
    ];
    expect(kinds(planSends(sends, taken()))).toEqual(['refused invalid_client_msg_id', 'refused invalid_client_msg_id', 'append']);
    expect(clientIdsToLookUp(sends)).toEqual([{ senderId: 7, clientMsgId: 'ok' }]);
  });

  it('puts off a repeat of an id an earlier send of the batch appends, whatever its conversation', () => {
    const sends: PlannableSend[] = [
      { conversationId: 'c1', senderId: 7, clientMsgId: 'k' },
      { conversationId: 'c1', senderId: 7, clientMsgId: 'k' },
      { conversationId: 'c2', senderId: 7, clientMsgId: 'k' },
      { conversationId: 'c1', senderId: 8, clientMsgId: 'k' },
    ];
    expect(kinds(planSends(sends, taken()))).toEqual(['append', 'later', 'later', 'append']);
  });

  it('planned again once the first is stored, the repeats are its retry or a conflict', () => {
    const later: PlannableSend[] = [
      { conversationId: 'c1', senderId: 7, clientMsgId: 'k' },
      { conversationId: 'c2', senderId: 7, clientMsgId: 'k' },
    ];
    const stored = original({ clientMsgId: 'k' });
    expect(kinds(planSends(later, taken(stored)))).toEqual(['retry', 'refused client_msg_id_conflict']);
  });
});
