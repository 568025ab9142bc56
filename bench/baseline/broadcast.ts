import type { Redis } from 'ioredis';
import { z } from 'zod';
import type { Broadcast } from './chat-service.js';

const published = z.object({ to: z.array(z.number().int()).min(1).max(2), frame: z.record(z.string(), z.unknown()) });

/**
 * Redis pub/sub between instances, the seed's way: every message is published once on one channel, every
 * instance receives it and writes it to whichever of the two participants' sockets it holds. No storage:
 * an instance not subscribed at that moment misses it.
 */
export function createRedisBroadcast(deps: {
  readonly publisher: Redis;
  /** A connection of its own: a subscribed Redis connection can do nothing else. */
  readonly subscriber: Redis;
  readonly channel: string;
}): {
  readonly broadcast: Broadcast;
  /** Subscribes; from then on every published frame goes to `deliver` for each participant. */
  listen(deliver: (userId: number, text: string) => void): Promise<void>;
  close(): Promise<void>;
} {
  let deliver: (userId: number, text: string) => void = () => undefined;
  deps.subscriber.on('message', (channel: string, payload: string) => {
    if (channel !== deps.channel) return;
    let json: unknown;
    try {
      json = JSON.parse(payload);
    } catch {
      return;
    }
    const parsed = published.safeParse(json);
    if (!parsed.success) return;
    const text = JSON.stringify(parsed.data.frame);
    for (const userId of new Set(parsed.data.to)) deliver(userId, text);
  });
  return {
    listen: async (to) => {
      deliver = to;
      await deps.subscriber.subscribe(deps.channel);
    },
    broadcast: async (participants, frame) => {
      await deps.publisher.publish(deps.channel, JSON.stringify({ to: participants, frame }));
    },
    close: async () => {
      await deps.subscriber.quit();
    },
  };
}
