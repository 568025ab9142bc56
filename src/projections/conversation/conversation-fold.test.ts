import { describe, expect, it } from 'vitest';
import type { ConversationEvent } from '../../commands/conversation/events.js';
import { foldConversation, subtractUnread, type ConversationChanges, type DiscussionRow, type ProjectableEvent } from './conversation-fold.js';

// Participants 7 (user1) and 42 (user2); each event a minute after the previous one unless said otherwise.
const t0 = Date.parse('2026-11-24T10:00:00.000Z');
const minute = 60_000;
const iso = (ms: number) => new Date(ms).toISOString();

const started = (at = t0): ConversationEvent => ({
  type: 'ConversationStarted',
  data: { conversation_id: 'c1', user1_id: 7, user2_id: 42, started_by: 42, started_at: iso(at) },
});
const sent = (sender: number, id: string, at: number, content: string | null = `text of ${id}`): ConversationEvent => ({
  type: 'MessageSent',
  data: { message_id: id, sender_id: sender, content, client_msg_id: `k-${id}`, sent_at: iso(at) },
});
const read = (reader: number, upTo: number, at: number): ConversationEvent => ({
  type: 'MessagesRead',
  data: { reader_id: reader, up_to_version: upTo, read_at: iso(at) },
});
const blocked = (by: number, at: number): ConversationEvent => ({
  type: 'ConversationBlocked',
  data: { blocked_by: by, blocked_user_id: by === 7 ? 42 : 7, blocked_at: iso(at) },
});
const unblocked = (by: number, at: number): ConversationEvent => ({
  type: 'ConversationUnblocked',
  data: { unblocked_by: by, unblocked_user_id: by === 7 ? 42 : 7, unblocked_at: iso(at) },
});
const deleted = (id: string, version: number, by: number, at: number): ConversationEvent => ({
  type: 'MessageDeleted',
  data: { message_id: id, message_version: version, deleted_by: by, deleted_at: iso(at) },
});

/** The events as stored, versions `after + 1, after + 2, …`. */
const recorded = (after: number, events: readonly ConversationEvent[]): ProjectableEvent[] =>
  events.map((event, index) => ({ streamId: 'c1', version: after + 1 + index, type: event.type, data: event.data }));

/** The stored row of c1 after `version` events, as the table holds it. */
const storedRow = (fields: Partial<DiscussionRow> & { version: number }): DiscussionRow => ({
  id: 'c1',
  user1_id: 7,
  user2_id: 42,
  last_message_content: null,
  last_message_at: null,
  created_at: t0,
  updated_at: t0,
  blocked_by: null,
  last_message_version: null,
  user1_unread: 0,
  user2_unread: 0,
  last_activity_at: t0,
  ...fields,
});

const deepFreeze = <T>(value: T): T => {
  if (value && typeof value === 'object') {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
};

/** given(stored row or none).when(new events).then(changes) / .thenThrows(message); inputs are frozen. */
const given = (stored: DiscussionRow | undefined) => ({
  when(...events: ConversationEvent[]) {
    const input = deepFreeze(recorded(stored?.version ?? 0, events));
    const run = () => foldConversation('c1', deepFreeze(stored), input);
    return {
      then(expected: Partial<Omit<ConversationChanges, 'discussion'>> & { discussion?: Partial<DiscussionRow> }) {
        const changes = run();
        expect(changes).not.toBeNull();
        const { discussion, ...rest } = expected;
        expect(changes).toMatchObject(rest);
        if (discussion) expect(changes?.discussion).toMatchObject(discussion);
        return changes as ConversationChanges;
      },
      thenThrows(message: RegExp) {
        expect(run).toThrow(message);
      },
    };
  },
});

const message = (sender: number, id: string, version: number, at: number, fields: object = {}) => ({
  id,
  conv_id: 'c1',
  sender_id: sender,
  msg: `text of ${id}`,
  time: at,
  read_at: null,
  client_msg_id: `k-${id}`,
  version,
  deleted_at: null,
  ...fields,
});

describe('ConversationStarted', () => {
  it('creates the row: no message yet, nothing unread, created and updated at the start', () => {
    given(undefined)
      .when(started())
      .then({
        created: true,
        discussion: storedRow({ version: 1 }),
        messages: [],
        readRanges: [],
        deletions: [],
      });
  });

  it('refuses a second start', () => {
    given(storedRow({ version: 1 })).when(started()).thenThrows(/c1: started twice \(version 2\)/);
    given(undefined).when(started(), started()).thenThrows(/started twice/);
  });

  it('refuses any event before the start', () => {
    given(undefined).when(sent(7, 'm1', t0)).thenThrows(/c1: event version 1 before ConversationStarted/);
    given(undefined).when(blocked(7, t0)).thenThrows(/before ConversationStarted/);
  });
});

describe('MessageSent', () => {
  it('adds the message, makes it the last one and counts it unread for the recipient only', () => {
    given(undefined)
      .when(started(), sent(42, 'm1', t0 + minute), sent(42, 'm2', t0 + 2 * minute), sent(7, 'm3', t0 + 3 * minute))
      .then({
        created: true,
        messages: [
          message(42, 'm1', 2, t0 + minute),
          message(42, 'm2', 3, t0 + 2 * minute),
          message(7, 'm3', 4, t0 + 3 * minute),
        ],
        discussion: {
          version: 4,
          last_message_content: 'text of m3',
          last_message_version: 4,
          last_message_at: t0 + 3 * minute,
          updated_at: t0 + 3 * minute,
          last_activity_at: t0 + 3 * minute,
          user1_unread: 2,
          user2_unread: 1,
        },
      });
  });

  it('adds to the stored row: an update, the stored counts grow', () => {
    given(storedRow({ version: 5, user1_unread: 3, user2_unread: 1 }))
      .when(sent(42, 'm6', t0 + minute))
      .then({ created: false, discussion: { version: 6, user1_unread: 4, user2_unread: 1, last_message_version: 6 } });
  });

  it('moves updated_at to the message time, even back in time (the log order rules)', () => {
    given(storedRow({ version: 5, updated_at: t0 + 10 * minute, last_activity_at: t0 + 10 * minute }))
      .when(sent(42, 'm6', t0 + minute))
      .then({ discussion: { updated_at: t0 + minute, last_activity_at: t0 + minute, last_message_at: t0 + minute } });
  });

  it('keeps an erased text (null) null, as the message and as the last message', () => {
    given(storedRow({ version: 1 }))
      .when(sent(42, 'm2', t0 + minute, null))
      .then({
        messages: [message(42, 'm2', 2, t0 + minute, { msg: null })],
        discussion: { last_message_content: null, last_message_version: 2, user1_unread: 1 },
      });
  });
});

describe('MessagesRead', () => {
  it('marks read the other participant\'s messages of the batch up to the version, and counts them off', () => {
    given(undefined)
      .when(
        started(),
        sent(42, 'm1', t0 + minute),
        sent(7, 'm2', t0 + 2 * minute),
        sent(42, 'm3', t0 + 3 * minute),
        read(7, 3, t0 + 4 * minute),
        sent(42, 'm5', t0 + 5 * minute),
      )
      .then({
        messages: [
          message(42, 'm1', 2, t0 + minute, { read_at: t0 + 4 * minute }),
          message(7, 'm2', 3, t0 + 2 * minute), // the reader's own message stays unread by them
          message(42, 'm3', 4, t0 + 3 * minute), // above up_to_version
          message(42, 'm5', 6, t0 + 5 * minute),
        ],
        readRanges: [],
        discussion: { version: 6, user1_unread: 2, user2_unread: 1, updated_at: t0 + 5 * minute },
      });
  });

  it('keeps the first read time of a message read twice, and counts it off once', () => {
    given(undefined)
      .when(started(), sent(42, 'm1', t0 + minute), read(7, 2, t0 + 2 * minute), read(7, 2, t0 + 3 * minute))
      .then({
        messages: [message(42, 'm1', 2, t0 + minute, { read_at: t0 + 2 * minute })],
        discussion: { user1_unread: 0, user2_unread: 0 },
      });
  });

  it('leaves stored messages to the writer as ranges, and their count too', () => {
    // Stored: versions 1..10; user 7 has 4 unread among them.
    given(storedRow({ version: 10, user1_unread: 4 }))
      .when(read(7, 8, t0 + minute), sent(42, 'm12', t0 + 2 * minute), read(7, 12, t0 + 3 * minute), read(42, 5, t0 + 4 * minute))
      .then({
        readRanges: [
          { conversationId: 'c1', readerId: 7, afterVersion: 0, upToVersion: 8, readAt: t0 + minute },
          // The second read only covers what the first did not, and stops at the stored rows.
          { conversationId: 'c1', readerId: 7, afterVersion: 8, upToVersion: 10, readAt: t0 + 3 * minute },
          { conversationId: 'c1', readerId: 42, afterVersion: 0, upToVersion: 5, readAt: t0 + 4 * minute },
        ],
        messages: [message(42, 'm12', 12, t0 + 2 * minute, { read_at: t0 + 3 * minute })],
        // 4 stored + 1 new - 1 new read: the stored ones are taken off after the write counted them.
        discussion: { version: 14, user1_unread: 4 },
      });
  });

  it('adds no range for a read that covers nothing new of the stored rows', () => {
    given(storedRow({ version: 10 }))
      .when(read(7, 10, t0 + minute), read(7, 10, t0 + 2 * minute))
      .then({ readRanges: [{ conversationId: 'c1', readerId: 7, afterVersion: 0, upToVersion: 10, readAt: t0 + minute }] });
  });

  it('moves updated_at forward only', () => {
    given(storedRow({ version: 3, updated_at: t0 + 10 * minute }))
      .when(read(7, 3, t0 + minute))
      .then({ discussion: { updated_at: t0 + 10 * minute } });
    given(storedRow({ version: 3, updated_at: t0 }))
      .when(read(7, 3, t0 + minute))
      .then({ discussion: { updated_at: t0 + minute, last_activity_at: t0 } });
  });
});

describe('subtractUnread', () => {
  it('takes the count off the reader\'s unread count only', () => {
    const row = deepFreeze(storedRow({ version: 10, user1_unread: 4, user2_unread: 2 }));
    expect(subtractUnread(row, 7, 3)).toEqual({ ...row, user1_unread: 1 });
    expect(subtractUnread(row, 42, 2)).toEqual({ ...row, user2_unread: 0 });
    expect(subtractUnread(row, 99, 2)).toEqual(row);
  });
});

describe('ConversationBlocked and ConversationUnblocked', () => {
  it('set and clear blocked_by, moving updated_at forward only, the activity order untouched', () => {
    given(storedRow({ version: 2, updated_at: t0 + minute, last_activity_at: t0 + minute }))
      .when(blocked(42, t0 + 2 * minute))
      .then({ discussion: { version: 3, blocked_by: 42, updated_at: t0 + 2 * minute, last_activity_at: t0 + minute } });
    given(storedRow({ version: 2, updated_at: t0 + 5 * minute }))
      .when(blocked(7, t0 + 2 * minute))
      .then({ discussion: { blocked_by: 7, updated_at: t0 + 5 * minute } });
    given(storedRow({ version: 3, blocked_by: 42, updated_at: t0 + 5 * minute }))
      .when(unblocked(42, t0 + 2 * minute))
      .then({ discussion: { version: 4, blocked_by: null, updated_at: t0 + 5 * minute } });
    given(storedRow({ version: 2 }))
      .when(blocked(7, t0 + minute), unblocked(7, t0 + 2 * minute), blocked(42, t0 + 3 * minute))
      .then({ discussion: { version: 5, blocked_by: 42, updated_at: t0 + 3 * minute }, messages: [], deletions: [] });
  });
});

describe('MessageDeleted', () => {
  it('makes a message of the batch a tombstone and blanks the last message it was', () => {
    given(undefined)
      .when(started(), sent(42, 'm1', t0 + minute), deleted('m1', 2, 42, t0 + 2 * minute))
      .then({
        messages: [message(42, 'm1', 2, t0 + minute, { msg: null, deleted_at: t0 + 2 * minute })],
        deletions: [],
        // The tombstone stays the last message and stays unread.
        discussion: {
          last_message_content: null,
          last_message_version: 2,
          last_message_at: t0 + minute,
          last_activity_at: t0 + minute,
          updated_at: t0 + 2 * minute,
          user1_unread: 1,
        },
      });
  });

  it('tombstones the very message named, not an earlier one of the batch', () => {
    given(undefined)
      .when(started(), sent(42, 'm1', t0 + minute), sent(7, 'm2', t0 + 2 * minute), deleted('m2', 3, 7, t0 + 3 * minute))
      .then({
        messages: [message(42, 'm1', 2, t0 + minute), message(7, 'm2', 3, t0 + 2 * minute, { msg: null, deleted_at: t0 + 3 * minute })],
        deletions: [],
        discussion: { last_message_content: null, last_message_version: 3 },
      });
  });

  it('leaves a stored message to the writer, and blanks the last message when it was that one', () => {
    given(storedRow({ version: 4, last_message_content: 'text of m4', last_message_version: 4, user1_unread: 2 }))
      .when(deleted('m4', 4, 42, t0 + minute))
      .then({
        messages: [],
        deletions: [{ conversationId: 'c1', messageVersion: 4, deletedAt: t0 + minute }],
        discussion: { version: 5, last_message_content: null, last_message_version: 4, user1_unread: 2, updated_at: t0 + minute },
      });
  });

  it('keeps the last message\'s text when another message is deleted', () => {
    given(storedRow({ version: 4, last_message_content: 'text of m4', last_message_version: 4 }))
      .when(deleted('m2', 2, 42, t0 + minute))
      .then({ deletions: [{ conversationId: 'c1', messageVersion: 2, deletedAt: t0 + minute }], discussion: { last_message_content: 'text of m4' } });
    given(undefined)
      .when(started(), sent(42, 'm1', t0 + minute), sent(7, 'm2', t0 + 2 * minute), deleted('m1', 2, 42, t0 + 3 * minute))
      .then({ discussion: { last_message_content: 'text of m2', last_message_version: 3 } });
  });

  it('moves updated_at forward only', () => {
    given(storedRow({ version: 4, updated_at: t0 + 10 * minute }))
      .when(deleted('m2', 2, 42, t0 + minute))
      .then({ discussion: { updated_at: t0 + 10 * minute } });
  });
});

describe('the fold', () => {
  it('changes nothing when there is nothing to apply', () => {
    expect(foldConversation('c1', storedRow({ version: 3 }), [])).toBeNull();
    expect(foldConversation('c1', undefined, [])).toBeNull();
  });

  it('leaves its inputs as they were (they are frozen here) and returns a new row', () => {
    const stored = deepFreeze(storedRow({ version: 1 }));
    const changes = given(stored).when(sent(42, 'm2', t0 + minute), read(7, 2, t0 + 2 * minute)).then({ created: false });
    expect(changes.discussion).not.toBe(stored);
    expect(stored).toEqual(storedRow({ version: 1 }));
  });

  it('refuses an event the schema refuses', () => {
    const bad: ProjectableEvent = { streamId: 'c1', version: 2, type: 'MessageSent', data: { sender_id: 7 } };
    expect(() => foldConversation('c1', storedRow({ version: 1 }), [bad])).toThrow();
  });
});
