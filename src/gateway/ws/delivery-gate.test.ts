import { describe, expect, it } from 'vitest';
import { decodeCursor, decodeResumeCursor, encodeCursor, MAX_CURSOR_FLOORS } from '../../delivery/cursor.js';
import type { NewMessageFrame } from '../../delivery/event-frames.js';
import type { FeedPosition } from '../../event-store/recorded-event.js';
import { createDeliveryGate, type DeliveryGate, type Outgoing } from './delivery-gate.js';
import type { DeliveredFrame } from './delivered-frames.js';

/**
 * The delivery gate with plain values: frames in, what goes out. Positions follow feed order: event `n` of
 * conversation `c` sits at `(100 + n, n)`, so a frame's seq and its position agree.
 */

const at = (n: number): FeedPosition => ({ transactionId: BigInt(100 + n), globalPosition: BigInt(n) });
const HORIZON: FeedPosition = { transactionId: 99n, globalPosition: 2n ** 63n - 1n };

function frame(seq: number, conversation = 'c', message = `#${seq}`): NewMessageFrame {
  const timestamp = new Date(0).toISOString();
  return {
    type: 'new_message',
    conversation_id: conversation,
    seq,
    cursor: encodeCursor(at(seq)),
    timestamp,
    data: { id: `m${seq}`, sender_id: 8, message, timestamp, read_at: null, client_msg_id: null },
  };
}

const typing: DeliveredFrame = {
  type: 'typing',
  conversation_id: 'c',
  timestamp: new Date(0).toISOString(),
  data: { user_id: 8, is_typing: true },
};

function gate(options: { heldBytes?: number; catchUpBytes?: number } = {}): DeliveryGate {
  return createDeliveryGate({ decodeCursor, heldBytes: options.heldBytes ?? 1 << 20, catchUpBytes: options.catchUpBytes ?? 1 << 20 });
}

/** What a list of outgoing items shows a client: the seq of each event frame, `resync` for a resync. */
function shown(outgoing: readonly Outgoing[]): (number | string)[] {
  return outgoing.map((item) => {
    if (item.kind === 'resync_required') return 'resync';
    const parsed = JSON.parse(item.text) as { seq?: number; type: string };
    return parsed.seq ?? parsed.type;
  });
}

const deliver = (subject: DeliveryGate, ...frames: DeliveredFrame[]): Outgoing[] =>
  frames.flatMap((item) => subject.deliver(item, JSON.stringify(item)));

describe('the delivery gate', () => {
  it('holds frames until it is opened, then goes live with the seq guard', () => {
    // given a socket just registered
    const subject = gate();
    expect(subject.phase).toBe('opening');
    expect(deliver(subject, frame(1))).toEqual([]);
    // when it opens without a cursor
    const released = subject.open(HORIZON);
    // then the held frame goes out, then live frames as they come, each seq once, typing always
    expect(shown(released)).toEqual([1]);
    expect(subject.phase).toBe('live');
    expect(shown(deliver(subject, frame(2), frame(2), frame(1), typing, frame(3)))).toEqual([2, 'typing', 3]);
    expect(subject.recoverFrom).toEqual(at(3));
    expect(released.every((item) => item.kind === 'frame' && !item.catchUp)).toBe(true);
    // live frames are not catch-up frames: the slow-reader bound applies to them
    expect(deliver(subject, frame(4)).map((item) => item.kind === 'frame' && item.catchUp)).toEqual([false]);
    // a typing frame passes without touching the seq guard
    expect(shown(deliver(subject, typing, frame(4), frame(3)))).toEqual(['typing']);
    expect(subject.recoverFrom).toEqual(at(4));
  });

  it('replays a resume, then releases the held frames after the catch-up: no gap, no duplicate', () => {
    // given a live socket that was sent 1..3
    const subject = gate();
    subject.open(HORIZON);
    deliver(subject, frame(1), frame(2), frame(3));
    // when the client resumes from 1, and 4 and 5 arrive live while the catch-up (2..4) is read
    expect(subject.beginResume(encodeCursor(at(1)))).toEqual({ after: at(1) });
    expect(subject.phase).toBe('replaying');
    expect(deliver(subject, frame(4), frame(5))).toEqual([]);
    const out = subject.finishReplay({ frames: [frame(2), frame(3), frame(4)] });
    // then the catch-up goes out (patiently), then only 5 of the held frames; 2 and 3 again, as asked
    expect(shown(out)).toEqual([2, 3, 4, 5]);
    expect(out.map((item) => item.kind === 'frame' && item.catchUp)).toEqual([true, true, true, false]);
    expect(subject.phase).toBe('live');
    expect(shown(deliver(subject, frame(5), frame(6)))).toEqual([6]);
  });

  it('releases only the held frames after the resume cursor when the catch-up is empty', () => {
    const subject = gate();
    subject.open(HORIZON);
    subject.beginResume(encodeCursor(at(2)));
    deliver(subject, frame(2), frame(3));
    expect(shown(subject.finishReplay({ frames: [] }))).toEqual([3]);
    expect(subject.recoverFrom).toEqual(at(3));
  });

  it('answers an undecodable cursor with invalid_cursor and changes nothing', () => {
    // given a socket opening with ?since=garbage
    const subject = gate();
    deliver(subject, frame(1));
    // when the cursor is checked
    for (const since of ['garbage', '', encodeCursor(at(1)) + '=', 'MTAxOjF', '!!!!']) {
      expect(subject.beginResume(since)).toBe('invalid_cursor');
    }
    // then it is still opening, and goes live from the horizon like a socket without a cursor
    expect(subject.phase).toBe('opening');
    expect(shown(subject.open(HORIZON))).toEqual([1]);
    expect(shown(deliver(subject, frame(2)))).toEqual([2]);
    // and a bad resume on a live socket leaves it live
    expect(subject.beginResume('garbage')).toBe('invalid_cursor');
    expect(shown(deliver(subject, frame(3)))).toEqual([3]);
  });

  it('holds from a NATS outage, replays from the last frame sent, and keeps the seq guard', () => {
    // given a live socket that was sent 1
    const subject = gate();
    subject.open(HORIZON);
    deliver(subject, frame(1));
    // when NATS drops, and the next connection brings 3 (also in the catch-up) and 4
    subject.suspend();
    expect(subject.phase).toBe('suspended');
    expect(deliver(subject, frame(3), frame(4))).toEqual([]);
    expect(subject.beginRecovery()).toEqual({ after: at(1) });
    const out = subject.finishReplay({ frames: [frame(1), frame(2), frame(3)] });
    // then 2 and 3 from the log, 4 from the held frames; 1 was sent before and is not repeated
    expect(shown(out)).toEqual([2, 3, 4]);
    expect(subject.phase).toBe('live');
    expect(subject.beginRecovery()).toBe('none');
  });

  it('recovers from the horizon it opened with when no frame was sent yet', () => {
    const subject = gate();
    subject.open(HORIZON);
    subject.suspend();
    expect(subject.beginRecovery()).toEqual({ after: HORIZON });
  });

  it('keeps holding when NATS drops again during the recovery, until the next one covers it', () => {
    const subject = gate();
    subject.open(HORIZON);
    deliver(subject, frame(1));
    subject.suspend();
    subject.beginRecovery();
    subject.suspend(); // dropped again while the first catch-up is read
    deliver(subject, frame(4));
    expect(shown(subject.finishReplay({ frames: [frame(2)] }))).toEqual([2]);
    expect(subject.phase).toBe('suspended');
    expect(subject.beginRecovery()).toEqual({ after: at(2) });
    expect(shown(subject.finishReplay({ frames: [frame(3)] }))).toEqual([3, 4]);
    expect(subject.phase).toBe('live');
  });

  it('counts the frames it keeps held for the next outage against the held-bytes budget, and only those', () => {
    const size = Buffer.byteLength(JSON.stringify(frame(1)));
    const droppedAgain = () => {
      // given a budget of two frames, and frame 3 held over from a recovery that a second outage overtook
      const subject = gate({ heldBytes: size * 2 });
      subject.open(HORIZON);
      deliver(subject, frame(1));
      subject.suspend();
      subject.beginRecovery();
      subject.suspend();
      deliver(subject, frame(3));
      expect(shown(subject.finishReplay({ frames: [frame(2)] }))).toEqual([2]);
      return subject;
    };
    // then, while the next recovery is read, one more frame fits the budget
    const fits = droppedAgain();
    fits.beginRecovery();
    deliver(fits, frame(4));
    expect(shown(fits.finishReplay({ frames: [frame(3)] }))).toEqual([3, 4]);
    // and two more do not
    const over = droppedAgain();
    over.beginRecovery();
    deliver(over, frame(4), frame(5));
    expect(shown(over.finishReplay({ frames: [frame(3)] }))).toEqual(['resync']);
  });

  it('does not let a resume during an outage release frames the outage may have gapped', () => {
    const subject = gate();
    subject.open(HORIZON);
    subject.suspend();
    subject.beginResume(encodeCursor(at(0)));
    deliver(subject, frame(3));
    expect(shown(subject.finishReplay({ frames: [frame(1)] }))).toEqual([1]);
    expect(subject.phase).toBe('suspended');
    subject.beginRecovery();
    expect(shown(subject.finishReplay({ frames: [frame(2), frame(3)] }))).toEqual([2, 3]);
  });

  it('sends resync_required instead of a catch-up too long to read, then goes live from the horizon', () => {
    const subject = gate();
    subject.open(HORIZON);
    subject.beginResume(encodeCursor(at(1)));
    deliver(subject, frame(7));
    const later: FeedPosition = { transactionId: 500n, globalPosition: 2n ** 63n - 1n };
    expect(shown(subject.finishReplay({ resync: 'too many', horizon: later }))).toEqual(['resync', 7]);
    expect(subject.phase).toBe('live');
    subject.suspend();
    expect(subject.beginRecovery()).toEqual({ after: at(7) });
  });

  it('recovers with a resync when it never knew where it started', () => {
    const subject = gate();
    subject.open(null);
    subject.suspend();
    expect(subject.beginRecovery()).toEqual({ after: null });
    expect(shown(subject.finishReplay({ resync: 'no position', horizon: HORIZON }))).toEqual(['resync']);
    expect(subject.recoverFrom).toEqual(HORIZON);
  });

  it('replaces a catch-up over its byte budget with resync_required, and recovers after what it read', () => {
    const long = 'x'.repeat(1_000);
    const subject = gate({ catchUpBytes: 3_000 });
    subject.open(HORIZON);
    subject.beginResume(encodeCursor(at(0)));
    deliver(subject, frame(3), frame(4));
    const out = subject.finishReplay({ frames: [frame(1, 'c', long), frame(2, 'c', long), frame(3, 'c', long)] });
    expect(shown(out)).toEqual(['resync', 4]);
    subject.suspend();
    expect(subject.beginRecovery()).toEqual({ after: at(4) });
  });

  it('drops held frames past their byte budget and ends the replay in resync_required, not a close', () => {
    // given a replay in flight and a held-bytes budget of about three frames
    const size = Buffer.byteLength(JSON.stringify(frame(1)));
    const subject = gate({ heldBytes: size * 3 });
    subject.open(HORIZON);
    subject.beginResume(encodeCursor(at(0)));
    // when five frames arrive before the catch-up returns
    expect(deliver(subject, frame(2), frame(3), frame(4), frame(5), frame(6))).toEqual([]);
    // then the replay ends in resync_required, none of the held frames go out, and it is live after
    expect(shown(subject.finishReplay({ frames: [frame(1)] }))).toEqual(['resync']);
    expect(subject.phase).toBe('live');
    expect(subject.recoverFrom).toEqual(at(6));
    expect(shown(deliver(subject, frame(7)))).toEqual([7]);
  });

  it('lets a recovery cover frames dropped for the budget while it waited to start', () => {
    const size = Buffer.byteLength(JSON.stringify(frame(1)));
    const subject = gate({ heldBytes: size });
    subject.open(HORIZON);
    deliver(subject, frame(1));
    subject.suspend();
    deliver(subject, frame(2), frame(3)); // over the budget: dropped, but committed before the catch-up reads
    subject.beginRecovery();
    expect(shown(subject.finishReplay({ frames: [frame(2), frame(3)] }))).toEqual([2, 3]);
  });

  it('sends a catch-up of exactly its byte budget, and holds exactly its held-bytes budget', () => {
    // given budgets equal to three frames' bytes
    const size = Buffer.byteLength(JSON.stringify(frame(1)));
    const subject = gate({ heldBytes: size * 3, catchUpBytes: size * 3 });
    subject.open(HORIZON);
    subject.beginResume(encodeCursor(at(0)));
    // when three frames arrive while the catch-up of three frames is read
    expect(deliver(subject, frame(4), frame(5), frame(6))).toEqual([]);
    // then all of it goes out: neither budget is exceeded
    expect(shown(subject.finishReplay({ frames: [frame(1), frame(2), frame(3)] }))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  it('refuses a second replay while one is in flight', () => {
    const subject = gate();
    subject.open(HORIZON);
    subject.beginResume(encodeCursor(at(0)));
    expect(() => subject.beginResume(encodeCursor(at(0)))).toThrow(/in flight/);
    expect(() => subject.open(HORIZON)).toThrow(/phase replaying/);
  });
});

describe('the fast path through the delivery gate', () => {
  // Conversations A and B; positions in feed order, given per frame.
  const A = '01JD0000000000000000000000';
  const B = '01JD0000000000000000000001';
  const position = (n: number): FeedPosition => ({ transactionId: BigInt(200 + n), globalPosition: BigInt(n) });
  const framed = (conversation: string, seq: number, n: number): NewMessageFrame => ({ ...frame(seq, conversation), cursor: encodeCursor(position(n)) });
  const cursorOf = (item: Outgoing | undefined) => (item?.kind === 'frame' ? (JSON.parse(item.text) as { cursor: string }).cursor : null);
  const live = (): DeliveryGate => {
    const subject = gate();
    subject.open(HORIZON);
    return subject;
  };

  it('sends a copy only as the next seq of a conversation it knows, and its ordered copy never again', () => {
    // given a live socket that was sent A1 by the ordered path
    const subject = live();
    deliver(subject, framed(A, 1, 1));
    // when fast-path copies arrive: A2, A2 again, A4 past a gap, B1 of a conversation it has no seq of
    const sent = subject.deliverEarly(framed(A, 2, 4), null);
    // then only A2 goes out, with the ordered position and A's floor as its cursor
    expect(shown(sent)).toEqual([2]);
    expect(decodeResumeCursor(cursorOf(sent[0])!)).toEqual({ position: position(1), floors: new Map([[A, 2]]) });
    expect(subject.deliverEarly(framed(A, 2, 4), null)).toEqual([]);
    expect(subject.deliverEarly(framed(A, 4, 6), null)).toEqual([]);
    expect(subject.deliverEarly(framed(B, 1, 5), null)).toEqual([]);
    expect(subject.recoverFrom).toEqual(position(1));
    // and when the ordered path brings A2, it is not sent again, but the ordered position moves to it
    expect(deliver(subject, framed(A, 2, 4))).toEqual([]);
    expect(subject.recoverFrom).toEqual(position(4));
    // and A3 by the ordered path goes out as it came, its own cursor: nothing runs ahead any more
    const next = framed(A, 3, 5);
    expect(deliver(subject, next)).toEqual([{ kind: 'frame', text: JSON.stringify(next), catchUp: false }]);
  });

  it('gives every frame a cursor from which a resume misses nothing and repeats nothing', () => {
    // given a socket sent A1 and B1, then A2 (at 4) by the fast path while B2 (at 3) is still on the ordered path
    const first = live();
    deliver(first, framed(A, 1, 1), framed(B, 1, 2));
    const early = first.deliverEarly(framed(A, 2, 4), null);
    // when the client resumes on a new socket from the cursor of A2
    const second = live();
    expect(second.beginResume(cursorOf(early[0])!)).toEqual({ after: position(2) });
    // then the catch-up after position 2 (B2, A2, B3) gives B2 and B3: A2 is not repeated, B2 not missed
    expect(shown(second.finishReplay({ frames: [framed(B, 2, 3), framed(A, 2, 4), framed(B, 3, 5)] }))).toEqual([2, 3]);
    // and the same from the cursor of B2 sent on the first socket while A ran ahead
    const b2 = deliver(first, framed(B, 2, 3));
    expect(decodeResumeCursor(cursorOf(b2[0])!)).toEqual({ position: position(3), floors: new Map([[A, 2]]) });
    const third = live();
    third.beginResume(cursorOf(b2[0])!);
    expect(shown(third.finishReplay({ frames: [framed(A, 2, 4), framed(B, 3, 5)] }))).toEqual([3]);
    // and the resumed socket knows A is at 2: the next fast-path copy of A goes out, with A's floor until A2 passes
    expect(shown(third.deliverEarly(framed(A, 3, 6), null))).toEqual([3]);
  });

  it('keeps a conversation\'s floor until the ordered path reaches the last copy sent ahead in it', () => {
    // given A1 by the ordered path, then A2 and A3 by the fast path
    const subject = live();
    deliver(subject, framed(A, 1, 1));
    expect(shown([...subject.deliverEarly(framed(A, 2, 2), null), ...subject.deliverEarly(framed(A, 3, 5), null)])).toEqual([2, 3]);
    // when the ordered path brings A2, then B1 (at 4, before A3 in feed order: a frame that goes out)
    expect(deliver(subject, framed(A, 2, 2))).toEqual([]);
    const b1 = deliver(subject, framed(B, 1, 4));
    // then B1's cursor still names A's floor at 3: the ordered position is past A2 only, not past A3
    expect(decodeResumeCursor(cursorOf(b1[0])!)).toEqual({ position: position(4), floors: new Map([[A, 3]]) });
    // and once the ordered path brings A3, frames carry their own cursor again
    expect(deliver(subject, framed(A, 3, 5))).toEqual([]);
    const b2 = framed(B, 2, 6);
    expect(deliver(subject, b2)).toEqual([{ kind: 'frame', text: JSON.stringify(b2), catchUp: false }]);
  });

  it('sends nothing by the fast path unless live: opening, replaying or suspended, the ordered path brings it', () => {
    const subject = gate();
    expect(subject.deliverEarly(framed(A, 1, 1), null)).toEqual([]);
    subject.open(HORIZON);
    deliver(subject, framed(A, 1, 1));
    subject.beginResume(encodeCursor(position(1)));
    expect(subject.deliverEarly(framed(A, 2, 2), null)).toEqual([]);
    expect(shown(subject.finishReplay({ frames: [framed(A, 2, 2)] }))).toEqual([2]);
    subject.suspend();
    expect(subject.deliverEarly(framed(A, 3, 3), null)).toEqual([]);
  });

  it('recovers after an outage from the ordered position, not from a frame the fast path sent', () => {
    const subject = live();
    deliver(subject, framed(A, 1, 1));
    subject.deliverEarly(framed(A, 2, 4), null);
    subject.suspend();
    expect(subject.beginRecovery()).toEqual({ after: position(1) });
    // the catch-up brings B1 (at 2), which the outage dropped, and A2 again, which is not resent
    expect(shown(subject.finishReplay({ frames: [framed(B, 1, 2), framed(A, 2, 4)] }))).toEqual([1]);
    expect(subject.recoverFrom).toEqual(position(4));
  });

  it(`runs ahead in at most ${MAX_CURSOR_FLOORS} conversations at once`, () => {
    const ids = Array.from({ length: MAX_CURSOR_FLOORS + 1 }, (_, i) => `01JE${String(i).padStart(22, '0')}`);
    const subject = live();
    ids.forEach((id, i) => deliver(subject, framed(id, 1, i + 1)));
    const early = ids.map((id, i) => shown(subject.deliverEarly(framed(id, 2, 100 + i), null)));
    expect(early).toEqual([...ids.slice(0, MAX_CURSOR_FLOORS).map(() => [2]), []]);
    // once the ordered path catches up with one of them, the last one may run ahead
    deliver(subject, framed(ids[0]!, 2, 100));
    expect(shown(subject.deliverEarly(framed(ids.at(-1)!, 2, 200), null))).toEqual([2]);
  });

  it('sends the first copy of a conversation it was sent nothing of when everything before it is at or before its position', () => {
    // given a socket live from the horizon, sent nothing of A or B; A's event before A5 was before the horizon
    const subject = live();
    const beforeHorizon: FeedPosition = { transactionId: 50n, globalPosition: 7n };
    // when A5 comes by the fast path with where A4 is
    const sent = subject.deliverEarly(framed(A, 5, 3), beforeHorizon);
    // then it goes out, with the ordered position and A's floor as its cursor
    expect(shown(sent)).toEqual([5]);
    expect(decodeResumeCursor(cursorOf(sent[0])!)).toEqual({ position: HORIZON, floors: new Map([[A, 5]]) });
    // and the next of A goes out too, while its ordered copy is not sent again
    expect(shown(subject.deliverEarly(framed(A, 6, 4), position(3)))).toEqual([6]);
    expect(deliver(subject, framed(A, 5, 3), framed(A, 6, 4))).toEqual([]);
  });

  it('leaves a first copy to the ordered path when what comes before it may not have been sent yet', () => {
    // given a live socket whose ordered position is B1's (at 2)
    const subject = live();
    deliver(subject, framed(B, 1, 2));
    // when first copies of A come: with no position for the event before, with it after the ordered position,
    // and one that is itself at or before that position (an event from before the socket's start)
    expect(subject.deliverEarly(framed(A, 2, 5), null)).toEqual([]);
    expect(subject.deliverEarly(framed(A, 2, 5), position(3))).toEqual([]);
    expect(subject.deliverEarly(framed(A, 2, 2), position(1))).toEqual([]);
    // then nothing of A went out; A1 (at 3) and A2 by the ordered path do, in order
    expect(shown(deliver(subject, framed(A, 1, 3), framed(A, 2, 5)))).toEqual([1, 2]);
    // and a first copy of C whose event before is at the ordered position exactly (A2's) is next
    const C = '01JD0000000000000000000002';
    expect(shown(subject.deliverEarly(framed(C, 4, 6), position(5)))).toEqual([4]);
  });
});
