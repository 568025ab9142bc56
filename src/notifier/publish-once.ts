import type { Redis } from 'ioredis';
import type { Notification } from './notification.js';

/**
 * Publishes on the channel only if the message's key was not set yet, and sets it, in one step: Redis runs a
 * script whole, so the key and the publish go together or not at all. KEYS[1] the message's key; ARGV: the
 * key's time to live in seconds, the channel, the JSON. Returns 1 when published, 0 when the key was there.
 */
const PUBLISH_ONCE = `
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then
  redis.call('PUBLISH', ARGV[2], ARGV[3])
  return 1
end
return 0`;

/** The key that records that a message's notification was published. */
export function notifiedKey(keyPrefix: string, messageId: string): string {
  return `${keyPrefix}notified:${messageId}`;
}

/**
 * Publishes `notification` on `channel` unless it was published before (a redelivery after a crash, a
 * relay's republish, another notifier instance): at most once per message for as long as its key lives
 * (`ttlSeconds`), and once when the caller retries until it resolves.
 * @returns 'published', or 'already_notified'.
 */
export async function publishOnce(
  redis: Redis,
  options: { readonly keyPrefix: string; readonly channel: string; readonly ttlSeconds: number },
  notification: Notification,
): Promise<'published' | 'already_notified'> {
  const key = notifiedKey(options.keyPrefix, notification.message_id);
  const published = await redis.eval(PUBLISH_ONCE, 1, key, String(options.ttlSeconds), options.channel, JSON.stringify(notification));
  return published === 1 ? 'published' : 'already_notified';
}
