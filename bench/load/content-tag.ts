/**
 * What the load tool writes in a message's content, so that any server speaking the protocol can be
 * measured without knowing its ids or sequence numbers: the run, the sender, the sender's own counter
 * (order, duplicates, loss) and the send time (latency). `performance.timeOrigin + performance.now()` is
 * one clock for every process on this machine, with sub-millisecond resolution.
 */
export type ContentTag = { readonly runId: string; readonly sender: number; readonly counter: number; readonly sentAt: number };

const PREFIX = 'lt';

export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

export function encodeContentTag(tag: ContentTag): string {
  return `${PREFIX} ${tag.runId} ${tag.sender} ${tag.counter} ${tag.sentAt.toFixed(3)}`;
}

/** null for content that is not ours (another run, another client). */
export function decodeContentTag(content: string, runId: string): ContentTag | null {
  const parts = content.split(' ');
  if (parts.length !== 5 || parts[0] !== PREFIX || parts[1] !== runId) return null;
  const sender = Number(parts[2]);
  const counter = Number(parts[3]);
  const sentAt = Number(parts[4]);
  if (!Number.isInteger(sender) || !Number.isInteger(counter) || !Number.isFinite(sentAt)) return null;
  return { runId, sender, counter, sentAt };
}
