/**
 * Typing signals are ephemeral and chatty (a keystroke each): forward a user's signal for a conversation when
 * its state changes, or to repeat the same state once `intervalMs` has passed; drop the rest.
 */
export function createTypingThrottle(options: { readonly intervalMs: number; readonly clock: () => Date }): {
  shouldForward(userId: number, conversationId: string, isTyping: boolean): boolean;
} {
  const last = new Map<string, { isTyping: boolean; at: number }>();
  const MAX_ENTRIES = 10_000;
  return {
    shouldForward(userId, conversationId, isTyping) {
      const key = `${userId}:${conversationId}`;
      const now = options.clock().getTime();
      const previous = last.get(key);
      if (previous && previous.isTyping === isTyping && now - previous.at < options.intervalMs) return false;
      if (last.size >= MAX_ENTRIES) {
        for (const [k, entry] of last) if (now - entry.at >= options.intervalMs) last.delete(k);
        if (last.size >= MAX_ENTRIES) last.clear();
      }
      last.set(key, { isTyping, at: now });
      return true;
    },
  };
}
