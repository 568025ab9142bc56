import { decodeContentTag, nowMs } from './content-tag.js';
import { countInto } from './bounded-parallel.js';

/** The part of a `new_message` frame the tracker reads; anything else in it is ignored. */
export type NewMessageFrame = { readonly conversation_id?: unknown; readonly data?: { readonly sender_id?: unknown; readonly message?: unknown } };

type SentMessage = {
  readonly sender: number;
  readonly counter: number;
  readonly sentAt: number;
  state: 'sent' | 'acked' | 'rejected';
  deliveries: number;
};

export type DeliveryTracker = {
  /** @returns the message's index, used as its `request_id`. */
  recordSend(sender: number, counter: number, sentAt: number): number;
  onAck(index: number): void;
  onRejected(index: number, reason: string): void;
  /** A `new_message` frame on a socket of `userId`. */
  onNewMessage(userId: number, frame: NewMessageFrame): void;
  /** Messages not answered yet plus acknowledged ones not delivered yet: 0 when the run is complete. */
  outstanding(): number;
  totals(): {
    sent: number;
    acked: number;
    rejected: Record<string, number>;
    unanswered: number;
    delivered: number;
    lost: number;
    duplicated: number;
    outOfOrder: number;
    echoed: number;
    latencies: Float64Array;
    ackLatencies: Float64Array;
  };
};

/**
 * Counts what one worker sent and what its recipients' sockets got. Order is judged per sender and
 * conversation from the counter in the content (each sender's counter goes up by one per send), so it does
 * not depend on the server's ids or `seq`. Only the first delivery of a message counts for latency; later
 * ones are duplicates.
 */
export function createDeliveryTracker(runId: string): DeliveryTracker {
  const messages: SentMessage[] = [];
  const byTag = new Map<string, SentMessage>();
  const lastCounter = new Map<string, number>();
  const rejected: Record<string, number> = {};
  const latencies: number[] = [];
  const ackLatencies: number[] = [];
  let unanswered = 0;
  let ackedUndelivered = 0;
  let acked = 0;
  let delivered = 0;
  let duplicated = 0;
  let outOfOrder = 0;
  let echoed = 0;

  return {
    recordSend(sender, counter, sentAt) {
      const message: SentMessage = { sender, counter, sentAt, state: 'sent', deliveries: 0 };
      messages.push(message);
      byTag.set(`${sender}:${counter}`, message);
      unanswered++;
      return messages.length - 1;
    },
    onAck(index) {
      const message = messages[index];
      if (message?.state !== 'sent') return;
      message.state = 'acked';
      unanswered--;
      acked++;
      ackLatencies.push(nowMs() - message.sentAt);
      if (message.deliveries === 0) ackedUndelivered++;
    },
    onRejected(index, reason) {
      const message = messages[index];
      if (message?.state !== 'sent') return;
      message.state = 'rejected';
      unanswered--;
      countInto(rejected, reason);
    },
    onNewMessage(userId, frame) {
      const receivedAt = nowMs();
      const content = frame.data?.message;
      if (typeof content !== 'string') return;
      const tag = decodeContentTag(content, runId);
      if (!tag) return;
      if (tag.sender === userId) {
        echoed++;
        return;
      }
      const message = byTag.get(`${tag.sender}:${tag.counter}`);
      if (!message) return;
      message.deliveries++;
      if (message.deliveries > 1) {
        duplicated++;
        return;
      }
      delivered++;
      if (message.state === 'acked') ackedUndelivered--;
      latencies.push(receivedAt - tag.sentAt);
      const orderKey = `${tag.sender}:${String(frame.conversation_id)}`;
      const last = lastCounter.get(orderKey) ?? -1;
      if (tag.counter < last) outOfOrder++;
      else lastCounter.set(orderKey, tag.counter);
    },
    outstanding: () => unanswered + ackedUndelivered,
    totals: () => ({
      sent: messages.length,
      acked,
      rejected: { ...rejected },
      unanswered,
      delivered,
      lost: ackedUndelivered,
      duplicated,
      outOfOrder,
      echoed,
      latencies: Float64Array.from(latencies),
      ackLatencies: Float64Array.from(ackLatencies),
    }),
  };
}
