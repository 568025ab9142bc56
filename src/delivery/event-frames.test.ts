import { describe, expect, it } from 'vitest';
import { decodeCursor } from './cursor.js';
import { eventFrame, eventFrameSchema, UnframeableEventError, type FrameableEvent } from './event-frames.js';

const at = '2026-11-24T10:00:00.123Z';

function event(type: string, data: Record<string, unknown>, version = 2): FrameableEvent {
  return { stream_id: '01JCONVERSATION', version, type, data, position: '741:12' };
}

describe('eventFrame', () => {
  it('turns MessageSent into new_message, to be read by both participants', () => {
    const frame = eventFrame(
      event('MessageSent', { message_id: '01JMESSAGE', sender_id: 42, content: 'hi 👋', client_msg_id: 'c-1', sent_at: at }, 5),
    );
    expect(frame).toEqual({
      type: 'new_message',
      conversation_id: '01JCONVERSATION',
      seq: 5,
      cursor: frame.cursor,
      timestamp: at,
      data: { id: '01JMESSAGE', sender_id: 42, message: 'hi 👋', timestamp: at, read_at: null, client_msg_id: 'c-1' },
    });
    expect(decodeCursor(frame.cursor)).toEqual({ transactionId: 741n, globalPosition: 12n });
    expect(eventFrameSchema.parse(JSON.parse(JSON.stringify(frame)))).toEqual(frame);
  });

  it('keeps a missing client_msg_id as null', () => {
    const frame = eventFrame(
      event('MessageSent', { message_id: 'm', sender_id: 42, content: 'x', client_msg_id: null, sent_at: at }),
    );
    expect(frame.type === 'new_message' && frame.data.client_msg_id).toBeNull();
  });

  it('turns MessagesRead into messages_read', () => {
    const frame = eventFrame(event('MessagesRead', { reader_id: 7, up_to_version: 4, read_at: at }, 6));
    expect(frame).toEqual({
      type: 'messages_read',
      conversation_id: '01JCONVERSATION',
      seq: 6,
      cursor: frame.cursor,
      timestamp: at,
      data: { reader_id: 7, read_at: at },
    });
    expect(eventFrameSchema.parse(JSON.parse(JSON.stringify(frame)))).toEqual(frame);
  });

  it('turns ConversationStarted into conversation_created carrying a fresh Conversation', () => {
    const frame = eventFrame(
      event('ConversationStarted', { conversation_id: '01JCONVERSATION', user1_id: 7, user2_id: 42, started_by: 42, started_at: at }, 1),
    );
    expect(frame).toEqual({
      type: 'conversation_created',
      conversation_id: '01JCONVERSATION',
      seq: 1,
      cursor: frame.cursor,
      timestamp: at,
      data: {
        id: '01JCONVERSATION',
        user1_id: 7,
        user2_id: 42,
        last_message_content: null,
        last_message_at: null,
        created_at: at,
        updated_at: at,
        unread_count: 0,
      },
    });
    expect(eventFrameSchema.parse(JSON.parse(JSON.stringify(frame)))).toEqual(frame);
  });

  it('gives timestamps with milliseconds whatever precision the event stored', () => {
    const frame = eventFrame(event('MessagesRead', { reader_id: 7, up_to_version: 4, read_at: '2026-11-24T10:00:00Z' }));
    expect(frame.timestamp).toBe('2026-11-24T10:00:00.000Z');
  });

  it('is the same frame every time for the same event (a repeat is byte-for-byte a repeat)', () => {
    const source = event('MessagesRead', { reader_id: 7, up_to_version: 4, read_at: at });
    expect(JSON.stringify(eventFrame(source))).toBe(JSON.stringify(eventFrame(source)));
  });

  it('refuses an unknown type, data off its schema and a bad position', () => {
    expect(() => eventFrame(event('TestEvent', { i: 1 }))).toThrow(UnframeableEventError);
    expect(() => eventFrame(event('MessageSent', { message_id: 'm', sender_id: '42', content: 'x', sent_at: at }))).toThrow(
      UnframeableEventError,
    );
    expect(() =>
      eventFrame({ ...event('MessagesRead', { reader_id: 7, up_to_version: 4, read_at: at }), position: 'nope' }),
    ).toThrow(UnframeableEventError);
  });
});
