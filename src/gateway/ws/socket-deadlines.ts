/** What has a deadline: called once, when it passes. */
export type DeadlineOwner = { deadlinePassed(): void };

/** One owner's place in the schedule: at most one deadline at a time (setting another replaces it). */
export type Deadline = {
  readonly owner: DeadlineOwner;
  /** When it passes, in `performance.now()` milliseconds; meaningless while `slot` is -1. */
  at: number;
  /** Its index in the heap; -1 when it has no deadline. */
  slot: number;
};

export type SocketDeadlines = {
  /** A place in the schedule for `owner`, with no deadline yet. */
  create(owner: DeadlineOwner): Deadline;
  /** Its deadline is `delayMs` from now, replacing the one it had. */
  set(deadline: Deadline, delayMs: number): void;
  /** It has no deadline any more. */
  clear(deadline: Deadline): void;
  /** Deadlines in the schedule, for tests. */
  readonly size: number;
  /** Stops the timer; nothing passes from now on. */
  close(): void;
};

/** setTimeout's limit; a deadline further away is looked at again when it fires. */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Every socket's next deadline on one gateway (the auth timeout, its token's expiry, the cut-off after a
 * slow reader's close) behind one timer: a binary min-heap by time, the timer set for its top. Each passes
 * when its own timer would have (same delay, same clock), without a Timeout and closure per socket. Setting
 * or clearing one is O(log n).
 */
export function createSocketDeadlines(): SocketDeadlines {
  const heap: Deadline[] = [];
  let timer: NodeJS.Timeout | undefined;
  /** When the timer fires; Infinity when there is none. */
  let timerAt = Infinity;
  let closed = false;

  function place(deadline: Deadline, slot: number): void {
    heap[slot] = deadline;
    deadline.slot = slot;
  }

  function up(slot: number): void {
    const deadline = heap[slot]!;
    while (slot > 0) {
      const parent = (slot - 1) >> 1;
      if (heap[parent]!.at <= deadline.at) break;
      place(heap[parent]!, slot);
      slot = parent;
    }
    place(deadline, slot);
  }

  function down(slot: number): void {
    const deadline = heap[slot]!;
    for (;;) {
      const left = 2 * slot + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child = right < heap.length && heap[right]!.at < heap[left]!.at ? right : left;
      if (heap[child]!.at >= deadline.at) break;
      place(heap[child]!, slot);
      slot = child;
    }
    place(deadline, slot);
  }

  function remove(deadline: Deadline): void {
    const slot = deadline.slot;
    deadline.slot = -1;
    const last = heap.pop()!;
    if (last === deadline) return;
    place(last, slot);
    up(slot);
    down(last.slot);
  }

  /** Keeps the timer on the earliest deadline: rearmed only when that one moved earlier or the timer fired. */
  function arm(): void {
    const first = heap[0];
    if (closed || first === undefined) {
      clearTimeout(timer);
      timer = undefined;
      timerAt = Infinity;
      return;
    }
    if (first.at >= timerAt) return;
    clearTimeout(timer);
    timerAt = first.at;
    timer = setTimeout(fire, Math.min(Math.max(0, first.at - performance.now()), MAX_TIMER_MS));
    // The sockets keep the process alive, not their deadlines (as with the heartbeat).
    timer.unref();
  }

  function fire(): void {
    timer = undefined;
    timerAt = Infinity;
    const now = performance.now();
    // Taken off before the owner runs: it may set its next deadline from there.
    while (!closed && heap[0] !== undefined && heap[0].at <= now) {
      const due = heap[0];
      remove(due);
      due.owner.deadlinePassed();
    }
    arm();
  }

  return {
    create: (owner) => ({ owner, at: 0, slot: -1 }),
    set(deadline, delayMs) {
      if (closed) return;
      // setTimeout's rounding: a delay under 1 ms (or not a number) is 1 ms.
      const at = performance.now() + (delayMs >= 1 ? delayMs : 1);
      if (deadline.slot === -1) {
        deadline.at = at;
        heap.push(deadline);
        deadline.slot = heap.length - 1;
        up(deadline.slot);
      } else {
        const earlier = at < deadline.at;
        deadline.at = at;
        if (earlier) up(deadline.slot);
        else down(deadline.slot);
      }
      arm();
    },
    clear(deadline) {
      if (deadline.slot === -1) return;
      remove(deadline);
      // The timer stays armed for a deadline that went away: it fires for nothing, or for the next one.
    },
    get size() {
      return heap.length;
    },
    close() {
      closed = true;
      for (const deadline of heap) deadline.slot = -1;
      heap.length = 0;
      arm();
    },
  };
}
