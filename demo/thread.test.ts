import { describe, expect, it } from 'vitest';
import { emptyThread, shownMessages, withDeleted, withFailedSend, withMessages, withPending, withReadBy, type ShownMessage } from './thread.js';

const ALICE = 1;
const BOB = 2;

const message = (seq: number, overrides: Partial<ShownMessage> = {}): ShownMessage => ({
  id: `m${seq}`,
  seq,
  senderId: ALICE,
  text: `text ${seq}`,
  sentAt: `2026-01-01T00:00:0${seq}.000Z`,
  readAt: null,
  deletedAt: null,
  clientMsgId: null,
  ...overrides,
});

describe('the thread the page shows', () => {
  it('shows each message once, in seq order, whichever paths brought it and in whatever order', () => {
    const thread = [[message(3)], [message(1), message(2)], [message(3)], [message(2), message(1)]].reduce(withMessages, emptyThread('c'));
    expect(shownMessages(thread).map((m) => m.id)).toEqual(['m1', 'm2', 'm3']);
  });

  it('keeps a pending send until a message with its client_msg_id arrives, then shows only the message', () => {
    const pending = withPending(emptyThread('c'), 'k1', 'hello');
    expect(pending.pending).toEqual([{ clientMsgId: 'k1', text: 'hello', failure: null }]);
    const arrived = withMessages(pending, [message(4, { clientMsgId: 'k1', text: 'hello' })]);
    expect(arrived.pending).toEqual([]);
    expect(shownMessages(arrived)).toHaveLength(1);
  });

  it('marks a refused send failed, and keeps it', () => {
    const thread = withFailedSend(withPending(emptyThread('c'), 'k1', 'hello'), 'k1', 'blocked');
    expect(thread.pending).toEqual([{ clientMsgId: 'k1', text: 'hello', failure: 'blocked' }]);
  });

  it('messages_read marks the other participant\'s messages before the read event, not the reader\'s nor later ones', () => {
    const thread = withMessages(emptyThread('c'), [message(1), message(2, { senderId: BOB }), message(3), message(5)]);
    const read = withReadBy(thread, BOB, '2026-01-01T00:01:00.000Z', 4);
    expect(shownMessages(read).map((m) => [m.id, m.readAt])).toEqual([
      ['m1', '2026-01-01T00:01:00.000Z'],
      ['m2', null],
      ['m3', '2026-01-01T00:01:00.000Z'],
      ['m5', null],
    ]);
  });

  it('a read or deleted state sticks when an older copy of the message arrives again (a REST page fetched before)', () => {
    let thread = withMessages(emptyThread('c'), [message(1)]);
    thread = withReadBy(thread, BOB, '2026-01-01T00:01:00.000Z', 2);
    thread = withDeleted(thread, 'm1', '2026-01-01T00:02:00.000Z');
    thread = withMessages(thread, [message(1)]);
    expect(shownMessages(thread)).toEqual([message(1, { text: null, readAt: '2026-01-01T00:01:00.000Z', deletedAt: '2026-01-01T00:02:00.000Z' })]);
  });

  it('ignores a delete of a message it does not show', () => {
    const thread = withMessages(emptyThread('c'), [message(1)]);
    expect(withDeleted(thread, 'm9', '2026-01-01T00:02:00.000Z')).toBe(thread);
  });
});
