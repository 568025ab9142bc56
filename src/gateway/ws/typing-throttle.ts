/**
 * Typing signals are ephemeral and chatty (a keystroke each): forward at most `perInterval` of a user's
 * signals for one conversation per `intervalMs`, whatever `is_typing` says (alternating true and false must
 * not become a flood to the other user); drop the rest.
 */
export function createTypingThrottle(options: {
  readonly intervalMs: number;
  readonly perInterval: number;
  readonly clock: () => Date;
}): {
  shouldForward(userId: number, conversationId: string): boolean;
} {
  /** Per user and conversation, the times of the signals forwarded within the last interval, oldest first. */
  const forwarded = new Map<string, number[]>();
  const MAX_ENTRIES = 10_000;
  return {
    shouldForward(userId, conversationId) {
      const key = `${userId}:${conversationId}`;
      const now = options.clock().getTime();
      const recent = (forwarded.get(key) ?? []).filter((at) => now - at < options.intervalMs);
      if (recent.length >= options.perInterval) return false;
      if (!forwarded.has(key) && forwarded.size >= MAX_ENTRIES) {
        for (const [k, times] of forwarded) if (times.every((at) => now - at >= options.intervalMs)) forwarded.delete(k);
        if (forwarded.size >= MAX_ENTRIES) forwarded.clear();
      }
      forwarded.set(key, [...recent, now]);
      return true;
    },
  };
}
