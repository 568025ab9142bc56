import { describe, expect, it } from 'vitest';
import type { NewMessageFrame } from '../../delivery/event-frames.js';
import type { DeliveredFrame } from './delivered-frames.js';
import { createSocketRegistry, type RegisteredSocket } from './socket-registry.js';

function socket(name: string, log: string[]): RegisteredSocket {
  return {
    deliver: (_frame, text) => void log.push(`${name}:${text}`),
    // A socket whose name starts with "w" writes fast-path copies; the others leave them to the ordered path.
    deliverEarly: (frame) => {
      log.push(`${name}:early ${frame.seq}`);
      return name.startsWith('w');
    },
    suspend: () => void log.push(`${name}:suspended`),
    recover: () => Promise.resolve({ replayed: 0, resyncRequired: false }),
  };
}

const typing = { type: 'typing' } as unknown as DeliveredFrame;
const copy = { type: 'new_message', seq: 2 } as unknown as NewMessageFrame;

describe('the socket registry', () => {
  it('counts, delivers to and forgets one or several sockets per user, each subscription acquired and released once per socket', async () => {
    const subscriptions: string[] = [];
    const registry = createSocketRegistry({
      maxSocketsPerUser: 2,
      subscriptions: {
        acquire: (userId) => Promise.resolve(void subscriptions.push(`+${userId}`)),
        release: (userId) => void subscriptions.push(`-${userId}`),
      },
    });
    const log: string[] = [];
    const [a, b, c] = [socket('a', log), socket('b', log), socket('c', log)];
    expect(await registry.add(1, a)).toBe('added');
    expect(await registry.add(1, a)).toBe('added');
    expect(registry.countOf(1)).toBe(1);
    expect(await registry.add(1, b)).toBe('added');
    expect(await registry.add(1, c)).toBe('too_many');
    expect([registry.countOf(1), registry.size]).toEqual([2, 2]);
    registry.deliver(1, typing, 'x');
    registry.deliver(2, typing, 'nobody');
    expect(log).toEqual(['a:x', 'b:x']);
    expect(registry.deliverEarly(1, copy, null)).toBe(0);
    expect(registry.deliverEarly(2, copy, null)).toBe(0);
    expect(log.splice(2)).toEqual(['a:early 2', 'b:early 2']);

    registry.remove(1, a);
    registry.remove(1, a);
    registry.remove(1, c);
    expect([registry.countOf(1), registry.size]).toEqual([1, 1]);
    registry.deliver(1, typing, 'y');
    expect(log.slice(2)).toEqual(['b:y']);
    expect(await registry.add(1, c)).toBe('added');
    registry.suspendAll();
    expect(log.slice(3)).toEqual(['b:suspended', 'c:suspended']);
    expect(registry.resumeAll()).toEqual([b, c]);
    registry.remove(1, b);
    registry.remove(1, c);
    expect([registry.countOf(1), registry.size]).toEqual([0, 0]);
    expect(subscriptions).toEqual(['+1', '+1', '-1', '+1', '-1', '-1']);
  });

  it('suspends a socket added during an outage, and releases its place when the subscription fails', async () => {
    let fail = false;
    const registry = createSocketRegistry({
      maxSocketsPerUser: 1,
      subscriptions: { acquire: () => (fail ? Promise.reject(new Error('no NATS')) : Promise.resolve()), release: () => undefined },
    });
    const log: string[] = [];
    registry.suspendAll();
    await registry.add(1, socket('a', log));
    expect(log).toEqual(['a:suspended']);
    fail = true;
    await expect(registry.add(2, socket('b', log))).rejects.toThrow('no NATS');
    expect([registry.countOf(2), registry.size]).toEqual([0, 1]);
  });

  it('offers a fast-path copy to each of the user\'s sockets and counts those that wrote it', async () => {
    const registry = createSocketRegistry({ maxSocketsPerUser: 3, subscriptions: { acquire: () => Promise.resolve(), release: () => undefined } });
    const log: string[] = [];
    await registry.add(1, socket('w1', log));
    expect(registry.deliverEarly(1, copy, null)).toBe(1);
    await registry.add(1, socket('n', log));
    await registry.add(1, socket('w2', log));
    expect(registry.deliverEarly(1, copy, null)).toBe(2);
    expect(log).toEqual(['w1:early 2', 'w1:early 2', 'n:early 2', 'w2:early 2']);
  });
});
