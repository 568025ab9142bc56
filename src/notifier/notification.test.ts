import { describe, expect, it } from 'vitest';
import { notificationFor, sentMessageOf, type MessageFacts, type SentMessage } from './notification.js';

const message: SentMessage = { conversationId: 'c-1', messageId: 'm-1', senderId: 7, content: 'hello' };
const offline: MessageFacts = { participants: [7, 8], blockedBy: null, online: new Set() };

describe('notificationFor', () => {
  it('notifies the other participant, in the contract\'s JSON, keys in its order', () => {
    expect(JSON.stringify(notificationFor(message, offline))).toBe(
      '{"to_user_id":8,"notif_type":"3","message":"Vous avez reçu un nouveau message","conversation_id":"c-1","message_id":"m-1","sender_id":7}',
    );
    expect(notificationFor({ ...message, senderId: 8 }, offline)).toMatchObject({ to_user_id: 7, sender_id: 8 });
  });

  it('stays silent for an erased message, a conversation blocked by either participant, a recipient online', () => {
    expect(notificationFor({ ...message, content: null }, offline)).toBe('erased');
    expect(notificationFor(message, { ...offline, blockedBy: 8 })).toBe('blocked');
    expect(notificationFor(message, { ...offline, blockedBy: 7 })).toBe('blocked');
    expect(notificationFor(message, { ...offline, online: new Set([8]) })).toBe('recipient_online');
    // The sender's own sockets do not matter.
    expect(notificationFor(message, { ...offline, online: new Set([7]) })).toMatchObject({ to_user_id: 8 });
  });

  it('stays silent when the sender is not a participant or the conversation is unknown', () => {
    expect(notificationFor({ ...message, senderId: 9 }, offline)).toBe('no_recipient');
    expect(notificationFor(message, { ...offline, participants: null })).toBe('no_recipient');
  });
});

describe('sentMessageOf', () => {
  const data = { message_id: 'm-1', sender_id: 7, content: 'hello', client_msg_id: null, sent_at: '2026-01-01T00:00:00.000Z' };

  it('reads a MessageSent, an erased one too, and nothing else', () => {
    expect(sentMessageOf({ stream_id: 'c-1', type: 'MessageSent', data })).toEqual(message);
    expect(sentMessageOf({ stream_id: 'c-1', type: 'MessageSent', data: { ...data, content: null } })).toEqual({ ...message, content: null });
    expect(sentMessageOf({ stream_id: 'c-1', type: 'MessagesRead', data: { reader_id: 8, up_to_version: 2, read_at: data.sent_at } })).toBeNull();
    expect(sentMessageOf({ stream_id: 'c-1', type: 'MessageSent', data: { ...data, sender_id: 'seven' } })).toBeNull();
  });
});
