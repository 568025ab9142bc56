/**
 * Deduplication of event frames by `seq`: per conversation, the highest `seq` accepted so far. A frame
 * whose `seq` is not above it was already seen (a resume overlapping what arrived live, a fan-out repeat)
 * and is dropped. A jump forward is accepted (a blocked user's conversation skips the blocked span).
 */
export class SeqGuard {
  readonly #last = new Map<string, number>();

  /** Whether the frame is new; if so it is remembered. */
  accept(conversationId: string, seq: number): boolean {
    const last = this.#last.get(conversationId);
    if (last !== undefined && seq <= last) return false;
    this.#last.set(conversationId, seq);
    return true;
  }

  lastSeq(conversationId: string): number | undefined {
    return this.#last.get(conversationId);
  }
}
