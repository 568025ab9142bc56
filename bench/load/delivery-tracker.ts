import { decodeContentTag, nowMs } from './content-tag.js';
import { countInto } from './bounded-parallel.js';

/** The part of a `new_message` frame the tracker reads; anything else in it is ignored. */
export type NewMessageFrame = {
  readonly conversation_id?: unknown;
  readonly seq?: unknown;
  readonly data?: { readonly sender_id?: unknown; readonly message?: unknown };
};

type SentMessage = {
  readonly sender: number;
  readonly counter: number;
  /** When the open-loop schedule had it due, and when the tool actually sent it (later when the tool lags). */
  readonly scheduledAt: number;
  readonly sentAt: number;
  state: 'sent' | 'acked' | 'rejected';
  deliveries: number;
};

/**
 * First deliveries whose frame names its event (`conversation_id` and `seq`: ours does, the baseline's has no
 * `seq`): the client's end of the per-hop breakdown (hop-breakdown.ts). Parallel arrays, one entry a delivery.
 */
export type TimedDeliveries = {
  /** `<conversation_id>:<seq>`, the roles' hop-times key. */
  readonly keys: string[];
  readonly scheduledAt: Float64Array;
  readonly sentAt: Float64Array;
  readonly receivedAt: Float64Array;
};

/** Timed deliveries kept per worker at most; later ones are not timed (a run of 10 minutes at 1,000/s fits). */
export const MAX_TIMED_DELIVERIES = 600_000;

export type DeliveryTracker = {
  /** @returns the message's index, used as its `request_id`. `scheduledAt` defaults to `sentAt`. */
  recordSend(sender: number, counter: number, sentAt: number, scheduledAt?: number): number;
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
    /** Send to first delivery at the recipient, and to the ack, from the actual send. */
    latencies: Float64Array;
    ackLatencies: Float64Array;
    /** The same from the scheduled time: the tool's own lag included, as a client due to send then sees it. */
    scheduledLatencies: Float64Array;
    ackScheduledLatencies: Float64Array;
    /** Every send's lag: scheduled to actually sent. */
    sendLags: Float64Array;
    timed: TimedDeliveries;
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
  const scheduledLatencies: number[] = [];
  const ackScheduledLatencies: number[] = [];
  const timed = { keys: [] as string[], scheduledAt: [] as number[], sentAt: [] as number[], receivedAt: [] as number[] };
  let unanswered = 0;
  let ackedUndelivered = 0;
  let acked = 0;
  let delivered = 0;
  let duplicated = 0;
  let outOfOrder = 0;
  let echoed = 0;

  return {
    recordSend(sender, counter, sentAt, scheduledAt = sentAt) {
      const message: SentMessage = { sender, counter, scheduledAt, sentAt, state: 'sent', deliveries: 0 };
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
      const ackedAt = nowMs();
      ackLatencies.push(ackedAt - message.sentAt);
      ackScheduledLatencies.push(ackedAt - message.scheduledAt);
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
      scheduledLatencies.push(receivedAt - message.scheduledAt);
      if (typeof frame.conversation_id === 'string' && typeof frame.seq === 'number' && timed.keys.length < MAX_TIMED_DELIVERIES) {
        timed.keys.push(`${frame.conversation_id}:${frame.seq}`);
        timed.scheduledAt.push(message.scheduledAt);
        timed.sentAt.push(message.sentAt);
        timed.receivedAt.push(receivedAt);
      }
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
      scheduledLatencies: Float64Array.from(scheduledLatencies),
      ackScheduledLatencies: Float64Array.from(ackScheduledLatencies),
      sendLags: Float64Array.from(messages, (message) => message.sentAt - message.scheduledAt),
      timed: {
        keys: [...timed.keys],
        scheduledAt: Float64Array.from(timed.scheduledAt),
        sentAt: Float64Array.from(timed.sentAt),
        receivedAt: Float64Array.from(timed.receivedAt),
      },
    }),
  };
}
