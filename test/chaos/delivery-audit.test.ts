import { describe, expect, it } from 'vitest';
import type { RecordedEvent } from '../../src/event-store/recorded-event.js';
import type { Frame } from '../support/gateway.js';
import type { SendAnswer, SentMessage } from './chat-clients.js';
import { auditSends, auditSeqs } from './delivery-audit.js';

const CONVERSATION = 'c1';

function event(version: number, type: string, clientMsgId?: string): RecordedEvent {
  return {
    transactionId: BigInt(version),
    globalPosition: BigInt(version),
    streamId: CONVERSATION,
    version,
    eventId: `e${version}`,
    type,
    data: clientMsgId === undefined ? {} : { client_msg_id: clientMsgId },
    metadata: {},
    createdAt: 0,
  };
}

function frame(seq: number, clientMsgId?: string): Frame {
  return clientMsgId === undefined
    ? { type: 'conversation_created', conversation_id: CONVERSATION, seq }
    : { type: 'new_message', conversation_id: CONVERSATION, seq, data: { client_msg_id: clientMsgId } };
}

function send(clientMsgId: string, answer: SendAnswer): SentMessage {
  return { phase: 'p', conversationId: CONVERSATION, sender: 1, recipient: 2, clientMsgId, answer };
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
});
