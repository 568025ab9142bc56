import { describe, expect, it } from 'vitest';
import { blockAfter } from './block-in-force.js';

const at = '2026-11-24T10:00:00.123Z';
const block = (by: number, user: number) => ({ type: 'ConversationBlocked', data: { blocked_by: by, blocked_user_id: user, blocked_at: at } });
const unblock = (by: number, user: number) => ({
  type: 'ConversationUnblocked',
  data: { unblocked_by: by, unblocked_user_id: user, unblocked_at: at },
});
const message = { type: 'MessageSent', data: { message_id: 'm', sender_id: 7, content: 'x', client_msg_id: null, sent_at: at } };

describe('blockAfter', () => {
  it('is the blocker from the block on, and null from the unblock on', () => {
    const events = [message, block(42, 7), message, message, unblock(42, 7), message, block(7, 42), message];
    const blocks: (number | null)[] = [];
    events.reduce<number | null>((before, event) => {
      const after = blockAfter(before, event);
      blocks.push(after);
      return after;
    }, null);
    expect(blocks).toEqual([null, 42, 42, 42, null, null, 7, 7]);
  });

  it('leaves the block as it was for any other event, and for a block change off its schema', () => {
    expect(blockAfter(42, { type: 'MessagesRead', data: {} })).toBe(42);
    expect(blockAfter(null, { type: 'ConversationBlocked', data: { blocked_by: 'x' } })).toBeNull();
    expect(blockAfter(42, { type: 'ConversationUnblocked', data: {} })).toBe(42);
  });
});
