import { decodeResumeCursor, encodeResumeCursor, MAX_CURSOR_FLOORS, type CursorFloors } from '../../delivery/cursor.js';
import type { NewMessageFrame } from '../../delivery/event-frames.js';
import { compareFeedPositions, type FeedPosition } from '../../event-store/recorded-event.js';
import { isEventFrame, type DeliveredFrame } from './delivered-frames.js';

/**
 * What one socket is sent of its user's event frames, and when: a pure state machine, no IO. The session
 * (socket-session.ts) feeds it what happens — frames from the delivery subscription, a client's `resume`,
 * a NATS outage and its end, what the catch-up read returned — and writes out what it returns, in order.
 * The numbered steps of docs/delivery.md ("Resuming a socket", "When a gateway's NATS connection drops")
 * are its methods.
 *
 * Phases:
 * - `opening`: authenticated and subscribed, not yet told where it starts; frames are held;
 * - `live`: frames go out as they come;
 * - `replaying`: a catch-up read is in flight (a client's resume, or the recovery after an outage); frames
 *   are held and released after it, minus what it returned;
 * - `suspended`: NATS dropped the subscription, so frames may be missing; everything is held until the
 *   recovery replay covers the outage.
 *
 * Guarantees, given frames that reach it in feed order apart from repeats:
 * - per conversation, a frame goes out only if its `seq` is above the last one sent (the fan-out repeats
 *   frames after a restart); a client's `resume` starts that count over;
 * - held frames are released in arrival order after the catch-up's frames, dropping those at or before its
 *   last position: no gap, no duplicate;
 * - held frames are bounded (`heldBytes`); past the bound they are dropped and the replay ends in
 *   `resync_required` instead (the client refetches over REST), and a catch-up over `catchUpBytes` is
 *   replaced by `resync_required` as well. Neither closes the socket;
 * - `recoverFrom` is where a replay after an outage must start so that nothing sent or skipped is missed:
 *   the position of the last event frame the ordered path brought (sent, or sent before by the fast path),
 *   else the horizon the socket started from.
 *
 * The fast path (`deliverEarly`): the sender's gateway publishes a `new_message` right after its append
 * commits, ahead of the ordered path (relay, JetStream, fan-out). The gate sends such a copy only while live
 * and only when it is next: the next `seq` of a conversation this socket was sent, or, in a conversation it was
 * sent nothing of yet, a copy past the socket's ordered position whose conversation's event before it is at or
 * before that position (the copy says where that event is). So per conversation the order and the once-each
 * rule hold whichever path a frame came by; everything else waits for the ordered path, which stays the
 * authority. A frame sent ahead is past the ordered position, so until the ordered path reaches it the
 * cursors this socket is sent name it as a floor (`encodeResumeCursor`): a resume from any cursor sent replays
 * neither a frame twice nor misses one. At most `MAX_CURSOR_FLOORS` conversations run ahead at once.
 */

/** An event frame's text with the cursor of `position` and the floors sent ahead of it in place of its own. */
const withCursor = (frame: object, position: FeedPosition, ahead: CursorFloors): string =>
  JSON.stringify({ ...frame, cursor: encodeResumeCursor(position, ahead) });

/** An event frame as the catch-up read returns it. */
export type CatchUpFrame = { readonly conversation_id: string; readonly seq: number; readonly cursor: string };

/** What the session writes out. Catch-up frames may wait for a slow reader; live ones are bounded. */
export type Outgoing =
  | { readonly kind: 'frame'; readonly text: string; readonly catchUp: boolean }
  | { readonly kind: 'resync_required'; readonly reason: string };

/** What the catch-up read gave: the frames after `after`, or why the client must refetch instead. */
export type CatchUpResult =
  | { readonly frames: readonly CatchUpFrame[] }
  | {
      readonly resync: string;
      /** The feed horizon read after the failed catch-up: where a later recovery starts (null: unknown). */
      readonly horizon: FeedPosition | null;
    };

export type PhaseName = 'opening' | 'live' | 'replaying' | 'suspended';

type Phase =
  | { readonly name: 'opening' }
  | { readonly name: 'live' }
  | { readonly name: 'suspended' }
  | {
      readonly name: 'replaying';
      readonly reason: 'resume' | 'recovery';
      /** Where the catch-up reads from; null for a recovery with no known start. */
      readonly after: FeedPosition | null;
      /** A resume's floors: per conversation, the highest seq the client already has past `after`. */
      readonly floors: CursorFloors;
      /** The outages the replay covers: those counted when it began. */
      readonly covers: number;
    };

type Held = { readonly frame: DeliveredFrame; readonly text: string; readonly bytes: number };

export type DeliveryGate = {
  readonly phase: PhaseName;
  /** Where a recovery replay would start; null when unknown (it then answers `resync_required`). */
  readonly recoverFrom: FeedPosition | null;
  /** A frame from the user's delivery subscription. */
  deliver(frame: DeliveredFrame, text: string): Outgoing[];
  /**
   * A fast-path copy of a `new_message`, ahead of the ordered path, with the position of its conversation's
   * event before it (null: unknown): sent only when it is next on this socket.
   */
  deliverEarly(frame: NewMessageFrame, previous: FeedPosition | null): Outgoing[];
  /** Step 0 (no `since`, or one that did not decode): go live, recovering from `start` until a frame is sent. */
  open(start: FeedPosition | null): Outgoing[];
  /**
   * Steps 1-2 of a resume: decode the client's cursor and hold live frames.
   * @returns the position to read the catch-up after, or `invalid_cursor` (nothing changes then).
   */
  beginResume(since: string): { readonly after: FeedPosition } | 'invalid_cursor';
  /** Outage step 1: the subscription may be missing frames; hold everything until `beginRecovery`. */
  suspend(): void;
  /**
   * Outage step 3: replay what the outage may have dropped. `none` when no outage is left to cover;
   * `after: null` when the start is unknown (the caller reports `resync` with the horizon).
   */
  beginRecovery(): { readonly after: FeedPosition | null } | 'none';
  /** Steps 3-5: the catch-up's frames, then the held ones after it; live, or suspended if an outage is pending. */
  finishReplay(result: CatchUpResult): Outgoing[];
};

export function createDeliveryGate(options: {
  readonly decodeCursor: (cursor: string) => FeedPosition | null;
  /** Most bytes of frames held while not live, before they are dropped for a resync. */
  readonly heldBytes: number;
  /** Most bytes of frames one catch-up may send; a bigger one is replaced by `resync_required`. */
  readonly catchUpBytes: number;
}): DeliveryGate {
  return new Gate(options.decodeCursor, options.heldBytes, options.catchUpBytes);
}

// The phases without data are shared by every socket.
const OPENING: Phase = { name: 'opening' };
const LIVE: Phase = { name: 'live' };
const SUSPENDED: Phase = { name: 'suspended' };
const NO_FLOORS: CursorFloors = new Map();

const later = (a: FeedPosition | null, b: FeedPosition | null): FeedPosition | null =>
  a === null ? b : b === null ? a : compareFeedPositions(a, b) >= 0 ? a : b;

/**
 * One per socket, and most sockets are idle: a class (its methods on the prototype, not closures per socket),
 * whose Maps and held list exist only while they hold something.
 */
class Gate implements DeliveryGate {
  readonly #decodeCursor: (cursor: string) => FeedPosition | null;
  readonly #heldLimit: number;
  readonly #catchUpLimit: number;
  #phase: Phase = OPENING;
  /** Frames held while not live, in arrival order; null when none. */
  #held: Held[] | null = null;
  #heldBytes = 0;
  /**
   * Frames were dropped for the held bound since the last catch-up began, up to `#droppedUpTo` (a position,
   * or null when none of them had one): the next release is a resync.
   */
  #overflowed = false;
  #droppedUpTo: FeedPosition | null = null;
  /** Per conversation, the last seq sent; null until the first. */
  #lastSeq: Map<string, number> | null = null;
  /** Conversations the fast path ran ahead of the ordered path in: the highest seq it sent in each; null when none. */
  #ahead: Map<string, number> | null = null;
  #recoverFrom: FeedPosition | null = null;
  /** NATS outages seen, and how many of them a recovery replay has covered: frames are held while they differ. */
  #outages = 0;
  #recovered = 0;

  constructor(decodeCursor: (cursor: string) => FeedPosition | null, heldLimit: number, catchUpLimit: number) {
    this.#decodeCursor = decodeCursor;
    this.#heldLimit = heldLimit;
    this.#catchUpLimit = catchUpLimit;
  }

  get phase(): PhaseName {
    return this.#phase.name;
  }

  get recoverFrom(): FeedPosition | null {
    return this.#recoverFrom;
  }

  deliver(frame: DeliveredFrame, text: string): Outgoing[] {
    if (this.#phase.name !== 'live') {
      this.#hold(frame, text);
      return [];
    }
    return this.#admit(frame) ? [{ kind: 'frame', text: this.#textOf(frame, text), catchUp: false }] : [];
  }

  deliverEarly(frame: NewMessageFrame, previous: FeedPosition | null): Outgoing[] {
    const recoverFrom = this.#recoverFrom;
    if (this.#phase.name !== 'live' || recoverFrom === null) return [];
    const conversation = frame.conversation_id;
    const last = this.#lastSeq?.get(conversation);
    if (last === undefined ? !this.#isFirstOfConversation(frame, previous, recoverFrom) : frame.seq !== last + 1) return [];
    const ahead = this.#ahead ?? new Map<string, number>();
    if (!ahead.has(conversation) && ahead.size >= MAX_CURSOR_FLOORS) return [];
    (this.#lastSeq ??= new Map()).set(conversation, frame.seq);
    ahead.set(conversation, frame.seq);
    this.#ahead = ahead;
    return [{ kind: 'frame', text: withCursor(frame, recoverFrom, ahead), catchUp: false }];
  }

  /**
   * In a conversation this socket was sent nothing of, a copy is next when everything of the conversation
   * before it is at or before the socket's ordered position (sent, or before the socket's start), and the copy
   * itself is not.
   */
  #isFirstOfConversation(frame: NewMessageFrame, previous: FeedPosition | null, recoverFrom: FeedPosition): boolean {
    const position = this.#decodeCursor(frame.cursor);
    return previous !== null && position !== null && compareFeedPositions(previous, recoverFrom) <= 0 && compareFeedPositions(position, recoverFrom) > 0;
  }

  open(start: FeedPosition | null): Outgoing[] {
    if (this.#phase.name !== 'opening') throw new Error(`open in phase ${this.#phase.name}`);
    this.#recoverFrom = start;
    return this.#resyncIfDropped() ?? this.#release(null);
  }

  beginResume(since: string): { readonly after: FeedPosition } | 'invalid_cursor' {
    const point = decodeResumeCursor(since);
    if (!point) return 'invalid_cursor';
    this.#beginReplay('resume', point.position, point.floors);
    return { after: point.position };
  }

  suspend(): void {
    this.#outages++;
    if (this.#phase.name === 'live') this.#phase = SUSPENDED;
  }

  beginRecovery(): { readonly after: FeedPosition | null } | 'none' {
    if (this.#outages === this.#recovered) return 'none';
    const after = this.#recoverFrom;
    this.#beginReplay('recovery', after);
    return { after };
  }

  finishReplay(result: CatchUpResult): Outgoing[] {
    const replay = this.#phase;
    if (replay.name !== 'replaying') throw new Error(`finishReplay in phase ${replay.name}`);
    if (replay.reason === 'recovery') this.#recovered = replay.covers;
    // A client's resume starts over: what this socket was sent before does not count against it; what the
    // client has past its cursor's position (its floors) does.
    if (replay.reason === 'resume') {
      this.#lastSeq = replay.floors.size === 0 ? null : new Map(replay.floors);
      this.#ahead = replay.floors.size === 0 ? null : new Map(replay.floors);
    }
    const resynced = this.#resyncIfDropped();
    if (resynced) return resynced;
    if ('resync' in result) {
      this.#recoverFrom = result.horizon;
      return [{ kind: 'resync_required', reason: result.resync }, ...this.#release(null)];
    }
    // The client has everything up to the catch-up's last frame: sent now, or earlier on this socket.
    const last = result.frames.reduce((position, frame) => this.#decodeCursor(frame.cursor) ?? position, replay.after);
    if (replay.reason === 'resume') this.#recoverFrom = last;
    else this.#recoverFrom = later(this.#recoverFrom, last);
    const texts = result.frames.map((frame) => ({ frame, text: JSON.stringify(frame) }));
    const bytes = texts.reduce((sum, { text }) => sum + Buffer.byteLength(text), 0);
    if (bytes > this.#catchUpLimit) {
      return [{ kind: 'resync_required', reason: 'too much to replay; refetch over REST' }, ...this.#release(last)];
    }
    const out: Outgoing[] = [];
    for (const { frame, text } of texts) if (this.#admit(frame)) out.push({ kind: 'frame', text: this.#textOf(frame, text), catchUp: true });
    return [...out, ...this.#release(last)];
  }

  /**
   * The seq guard of the ordered path: passes a frame not sent yet for its conversation, and records it. A
   * frame the fast path sent before is not sent again, but the ordered path has now reached it.
   */
  #admit(frame: DeliveredFrame | CatchUpFrame): boolean {
    if (!('seq' in frame)) return true; // typing frames: no seq, always pass
    const conversation = frame.conversation_id;
    const fresh = frame.seq > (this.#lastSeq?.get(conversation) ?? 0);
    const ahead = this.#ahead;
    const lead = ahead?.get(conversation);
    if (!fresh && lead === undefined) return false;
    this.#recoverFrom = this.#decodeCursor(frame.cursor) ?? this.#recoverFrom;
    if (ahead && lead !== undefined && frame.seq >= lead) {
      ahead.delete(conversation);
      if (ahead.size === 0) this.#ahead = null;
    }
    if (!fresh) return false;
    (this.#lastSeq ??= new Map()).set(conversation, frame.seq);
    return true;
  }

  /** The frame's text with the cursor of this socket's position: its own, unless the fast path ran ahead. */
  #textOf(frame: DeliveredFrame | CatchUpFrame, text: string): string {
    const ahead = this.#ahead;
    const recoverFrom = this.#recoverFrom;
    if (ahead === null || ahead.size === 0 || !('cursor' in frame) || recoverFrom === null) return text;
    return withCursor(frame, recoverFrom, ahead);
  }

  #positionOf(frame: DeliveredFrame): FeedPosition | null {
    return isEventFrame(frame) ? this.#decodeCursor(frame.cursor) : null;
  }

  #hold(frame: DeliveredFrame, text: string): void {
    const bytes = Buffer.byteLength(text);
    if (!this.#overflowed && this.#heldBytes + bytes <= this.#heldLimit) {
      (this.#held ??= []).push({ frame, text, bytes });
      this.#heldBytes += bytes;
      return;
    }
    // Over the bound: drop what is held and whatever else comes before the next release, which becomes a
    // resync. The client refetches over REST; a later recovery starts after the last frame dropped.
    this.#overflowed = true;
    let droppedUpTo = this.#droppedUpTo;
    for (const item of this.#held ?? []) droppedUpTo = later(droppedUpTo, this.#positionOf(item.frame));
    this.#droppedUpTo = later(droppedUpTo, this.#positionOf(frame));
    this.#held = null;
    this.#heldBytes = 0;
  }

  /** Releases the held frames after `after` (all of them when null) and goes live, unless an outage is pending. */
  #release(after: FeedPosition | null): Outgoing[] {
    const keep: Held[] = [];
    for (const item of this.#held ?? []) {
      const position = this.#positionOf(item.frame);
      if (after !== null && position !== null && compareFeedPositions(position, after) <= 0) continue;
      keep.push(item);
    }
    if (this.#outages !== this.#recovered) {
      this.#phase = SUSPENDED;
      this.#held = keep.length === 0 ? null : keep;
      this.#heldBytes = keep.reduce((sum, item) => sum + item.bytes, 0);
      return [];
    }
    this.#held = null;
    this.#heldBytes = 0;
    this.#phase = LIVE;
    const out: Outgoing[] = [];
    for (const item of keep) if (this.#admit(item.frame)) out.push({ kind: 'frame', text: this.#textOf(item.frame, item.text), catchUp: false });
    return out;
  }

  /** Replaces what would have been sent by `resync_required` when held frames were dropped. */
  #resyncIfDropped(): Outgoing[] | null {
    if (!this.#overflowed) return null;
    this.#recoverFrom = later(this.#recoverFrom, this.#droppedUpTo);
    this.#overflowed = false;
    this.#droppedUpTo = null;
    return [{ kind: 'resync_required', reason: 'too many frames arrived while replaying; refetch over REST' }, ...this.#release(null)];
  }

  #beginReplay(reason: 'resume' | 'recovery', after: FeedPosition | null, floors: CursorFloors = NO_FLOORS): void {
    if (this.#phase.name === 'replaying') throw new Error('a replay is already in flight');
    this.#phase = { name: 'replaying', reason, after, floors, covers: this.#outages };
    // Frames dropped so far were committed before this catch-up reads, after a position they follow: it
    // returns them.
    this.#overflowed = false;
    this.#droppedUpTo = null;
  }
}
