import { describe, expect, it } from 'vitest';
import { deciderSpec } from '../../../test/support/decider-spec.js';
import { conversationDecider } from './conversation.js';
import type { ConversationEvent } from './events.js';

const spec = deciderSpec(conversationDecider);
const now = new Date('2026-11-24T10:00:00.000Z');
const at = now.toISOString();

const started: ConversationEvent = {
  type: 'ConversationStarted',
  data: { conversation_id: 'c1', user1_id: 7, user2_id: 42, started_by: 42, started_at: at },
};
const sent = (sender: number, id: string): ConversationEvent => ({
  type: 'MessageSent',
  data: { message_id: id, sender_id: sender, content: 'hi', client_msg_id: null, sent_at: at },
});

describe('StartConversation', () => {
  it('orders the participants so that user1_id < user2_id', () => {
    spec
      .given([])
      .when({ type: 'StartConversation', conversationId: 'c1', initiatorId: 42, otherUserId: 7, now })
      .then([started]);
  });

  it('refuses a conversation with oneself', () => {
    spec
      .given([])
      .when({ type: 'StartConversation', conversationId: 'c1', initiatorId: 7, otherUserId: 7, now })
      .thenThrows('self_conversation');
  });

  it('refuses to start a stream twice', () => {
    spec
      .given([started])
      .when({ type: 'StartConversation', conversationId: 'c1', initiatorId: 7, otherUserId: 42, now })
      .thenThrows('conversation_exists');
  });
});

describe('SendMessage', () => {
  const send = (senderId: number, content: string) =>
    ({ type: 'SendMessage', senderId, messageId: 'm1', content, clientMsgId: 'k1', now }) as const;

  it('records the message of a participant', () => {
    spec
      .given([started])
      .when(send(7, 'salut'))
      .then([
        {
          type: 'MessageSent',
          data: { message_id: 'm1', sender_id: 7, content: 'salut', client_msg_id: 'k1', sent_at: at },
        },
      ]);
  });

  it('answers not_found to a non-participant, as for a missing conversation', () => {
    spec.given([started]).when(send(99, 'hi')).thenThrows('not_found');
    spec.given([]).when(send(7, 'hi')).thenThrows('not_found');
  });

  it('refuses empty and blank content', () => {
    spec.given([started]).when(send(7, '')).thenThrows('blank_message');
    spec.given([started]).when(send(7, ' \n\t\u3000')).thenThrows('blank_message');
  });

  it('counts code points: 1000 emoji pass, 1001 characters do not', () => {
    spec.given([started]).when(send(7, '😀'.repeat(1000))).then([expect.anything() as never]);
    spec.given([started]).when(send(7, 'x'.repeat(1001))).thenThrows('too_long');
    spec.given([started]).when(send(7, '😀'.repeat(1001))).thenThrows('too_long');
  });

  it('refuses what cannot be stored and given back as sent: a lone surrogate, a NUL', () => {
    spec.given([started]).when(send(7, 'half an emoji \ud83d')).thenThrows('invalid_characters');
    spec.given([started]).when(send(7, 'nul \u0000 inside')).thenThrows('invalid_characters');
    spec.given([started]).when(send(7, 'tab\tbell\u0007 <b>html</b> \'; DROP TABLE messages; --')).then([expect.anything() as never]);
  });
});

describe('MarkConversationRead', () => {
  const read = (readerId: number) => ({ type: 'MarkConversationRead', readerId, now }) as const;

  it('reads up to the last message of the other participant', () => {
    spec
      .given([started, sent(42, 'm1'), sent(42, 'm2'), sent(7, 'm3')])
      .when(read(7))
      .then([{ type: 'MessagesRead', data: { reader_id: 7, up_to_version: 3, read_at: at } }]);
  });

  it('records nothing when nothing is unread', () => {
    spec.given([started, sent(7, 'm1')]).when(read(7)).then([]);
    spec
      .given([started, sent(42, 'm1'), { type: 'MessagesRead', data: { reader_id: 7, up_to_version: 2, read_at: at } }])
      .when(read(7))
      .then([]);
  });

  it('answers not_found to a non-participant', () => {
    spec.given([started]).when(read(5)).thenThrows('not_found');
  });
});
