import { describe, expect, it } from 'vitest';
import { encodeContentTag } from './content-tag.js';
import { createDeliveryTracker } from './delivery-tracker.js';

const RUN = 'run1';
const frame = (sender: number, counter: number, sentAt: number, extra: { conversation_id?: unknown; seq?: unknown } = {}) => ({
  conversation_id: 'conv',
  ...extra,
  data: { sender_id: sender, message: encodeContentTag({ runId: RUN, sender, counter, sentAt }) },
});

describe('the delivery tracker', () => {
  it('measures each delivery from the actual send and from the scheduled one, and each send\'s lag', () => {
    const tracker = createDeliveryTracker(RUN);
    const now = performance.timeOrigin + performance.now();
    // Due 40 ms ago, sent 10 ms ago: the tool was 30 ms late.
    const index = tracker.recordSend(1, 0, now - 10, now - 40);
    tracker.onAck(index);
    tracker.onNewMessage(2, frame(1, 0, now - 10, { seq: 3 }));
    const totals = tracker.totals();
    expect(totals.sendLags[0]).toBeCloseTo(30, 6);
    const fromSend = totals.latencies[0]!;
    const fromSchedule = totals.scheduledLatencies[0]!;
    expect(fromSend).toBeGreaterThanOrEqual(10);
    expect(fromSchedule - fromSend).toBeCloseTo(30, 3);
    expect(totals.ackScheduledLatencies[0]! - totals.ackLatencies[0]!).toBeCloseTo(30, 6);
  });

  it('takes the scheduled time as the send time when none is given', () => {
    const tracker = createDeliveryTracker(RUN);
    tracker.recordSend(1, 0, 1_000);
    expect(Array.from(tracker.totals().sendLags)).toEqual([0]);
  });

  it('times first deliveries to the recipient that name their event, for the per-hop breakdown', () => {
    const tracker = createDeliveryTracker(RUN);
    tracker.recordSend(1, 0, 100, 90);
    tracker.recordSend(1, 1, 200, 190);
    tracker.recordSend(1, 2, 300, 290);
    tracker.onNewMessage(1, frame(1, 0, 100, { seq: 2 })); // the sender's echo
    tracker.onNewMessage(2, frame(1, 0, 100, { seq: 2 }));
    tracker.onNewMessage(2, frame(1, 0, 100, { seq: 2 })); // a duplicate
    tracker.onNewMessage(2, frame(1, 1, 200)); // no seq (the baseline's frames)
    tracker.onNewMessage(2, frame(1, 2, 300, { seq: 4 }));
    const { timed, delivered, duplicated } = tracker.totals();
    expect({ delivered, duplicated }).toEqual({ delivered: 3, duplicated: 1 });
    expect(timed.keys).toEqual(['conv:2', 'conv:4']);
    expect(Array.from(timed.scheduledAt)).toEqual([90, 290]);
    expect(Array.from(timed.sentAt)).toEqual([100, 300]);
    expect(timed.receivedAt).toHaveLength(2);
  });
});
