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

const blocked = (by: number, user: number): ConversationEvent => ({
  type: 'ConversationBlocked',
  data: { blocked_by: by, blocked_user_id: user, blocked_at: at },
});
const unblocked = (by: number, user: number): ConversationEvent => ({
  type: 'ConversationUnblocked',
  data: { unblocked_by: by, unblocked_user_id: user, unblocked_at: at },
});

describe('BlockConversation', () => {
  const block = (userId: number) => ({ type: 'BlockConversation', userId, now }) as const;

  it('records who blocked whom', () => {
    spec.given([started]).when(block(42)).then([blocked(42, 7)]);
  });

  it('changes nothing when the blocker blocks again', () => {
    spec.given([started, blocked(42, 7)]).when(block(42)).then([]);
  });

  it('answers not_found to the blocked user, for whom the conversation no longer exists, and to strangers', () => {
    spec.given([started, blocked(42, 7)]).when(block(7)).thenThrows('not_found');
    spec.given([started]).when(block(5)).thenThrows('not_found');
    spec.given([]).when(block(7)).thenThrows('not_found');
  });

  it('can block again after an unblock', () => {
    spec.given([started, blocked(42, 7), unblocked(42, 7)]).when(block(7)).then([blocked(7, 42)]);
  });
});

describe('UnblockConversation', () => {
  const unblock = (userId: number) => ({ type: 'UnblockConversation', userId, now }) as const;

  it('lets the blocker unblock', () => {
    spec.given([started, blocked(42, 7)]).when(unblock(42)).then([unblocked(42, 7)]);
  });

  it('answers not_found to the blocked user', () => {
    spec.given([started, blocked(42, 7)]).when(unblock(7)).thenThrows('not_found');
  });

  it('changes nothing on a conversation that is not blocked', () => {
    spec.given([started]).when(unblock(7)).then([]);
    spec.given([started, blocked(42, 7), unblocked(42, 7)]).when(unblock(42)).then([]);
  });
});

describe('while blocked', () => {
  const send = (senderId: number) => ({ type: 'SendMessage', senderId, messageId: 'm9', content: 'hi', clientMsgId: null, now }) as const;
  const read = (readerId: number) => ({ type: 'MarkConversationRead', readerId, now }) as const;

  it('refuses the blocker a send with blocked, and the blocked user with not_found', () => {
    spec.given([started, blocked(42, 7)]).when(send(42)).thenThrows('blocked');
    spec.given([started, blocked(42, 7)]).when(send(7)).thenThrows('not_found');
  });

  it('lets the blocker mark read, not the blocked user', () => {
    spec
      .given([started, sent(7, 'm1'), blocked(42, 7)])
      .when(read(42))
      .then([{ type: 'MessagesRead', data: { reader_id: 42, up_to_version: 2, read_at: at } }]);
    spec.given([started, sent(42, 'm1'), blocked(42, 7)]).when(read(7)).thenThrows('not_found');
  });

  it('lets both send again after the unblock', () => {
    spec.given([started, blocked(42, 7), unblocked(42, 7)]).when(send(7)).then([expect.anything() as never]);
    spec.given([started, blocked(42, 7), unblocked(42, 7)]).when(send(42)).then([expect.anything() as never]);
  });
});

describe('DeleteMessage', () => {
  const stored = { id: 'm1', version: 2, senderId: 42 };
  const del = (requesterId: number, message: typeof stored | null = stored) =>
    ({ type: 'DeleteMessage', requesterId, message, now }) as const;
  const deleted: ConversationEvent = {
    type: 'MessageDeleted',
    data: { message_id: 'm1', message_version: 2, deleted_by: 42, deleted_at: at },
  };

  it('lets the sender delete their message for everyone', () => {
    spec.given([started, sent(42, 'm1')]).when(del(42)).then([deleted]);
  });

  it('changes nothing when the message is deleted again', () => {
    spec.given([started, sent(42, 'm1'), deleted]).when(del(42)).then([]);
  });

  it('refuses the other participant with forbidden', () => {
    spec.given([started, sent(42, 'm1')]).when(del(7)).thenThrows('forbidden');
  });

  it('answers not_found for a message not in the conversation, to strangers and to the blocked user', () => {
    spec.given([started, sent(42, 'm1')]).when(del(42, null)).thenThrows('not_found');
    spec.given([started, sent(42, 'm1')]).when(del(5)).thenThrows('not_found');
    spec.given([started, sent(42, 'm1'), blocked(7, 42)]).when(del(42)).thenThrows('not_found');
  });

  it('lets a blocker delete their own message while the conversation is blocked', () => {
    spec.given([started, sent(42, 'm1'), blocked(42, 7)]).when(del(42)).then([deleted]);
  });
});

describe('evolve and snapshots', () => {
  it('keeps the block and the deletions through a snapshot', () => {
    const events = [started, sent(42, 'm1'), blocked(42, 7), { type: 'MessageDeleted', data: { message_id: 'm1', message_version: 2, deleted_by: 42, deleted_at: at } } as ConversationEvent];
    const state = events.reduce(conversationDecider.evolve, conversationDecider.initialState());
    expect(state).toMatchObject({ version: 4, blockedBy: 42, deleted: { m1: at } });
    expect(conversationDecider.parseSnapshot(JSON.parse(JSON.stringify(state)))).toEqual(state);
  });
});
