// A fault for tests, preloaded into a role (`node --import <this file>`, or NODE_OPTIONS for the roles that
// `npm start` runs). Once the role has installed its handlers (an uncaughtException listener and, last, its
// SIGTERM shutdown), or after THROW_SOON_DEADLINE_MS regardless, it throws an error nothing catches
// (THROW_SOON=exception) or rejects a promise nobody awaits (THROW_SOON=rejection). No hook in the role.
// THROW_SOON_ENTRY: only in the process whose entry script ends with it. THROW_SOON_TRIGGER_FILE: only once
// that file exists, which it then removes, so that a restarted role does not throw again.

import { existsSync, unlinkSync } from 'node:fs';
import { clearInterval, setInterval } from 'node:timers';

const kind = process.env.THROW_SOON ?? 'exception';
const entry = process.env.THROW_SOON_ENTRY;
const trigger = process.env.THROW_SOON_TRIGGER_FILE;
const deadline = Date.now() + Number(process.env.THROW_SOON_DEADLINE_MS ?? 30_000);
const ready = () => process.listenerCount('uncaughtException') > 0 && process.listenerCount('SIGTERM') > 0;

/** Whether the trigger file was there and this process took it. */
function takeTrigger() {
  if (!existsSync(trigger)) return false;
  try {
    unlinkSync(trigger);
    return true;
  } catch {
    return false;
  }
}

if (entry === undefined || (process.argv[1] ?? '').endsWith(entry)) {
  const poll = setInterval(() => {
    if (!ready() && Date.now() < deadline) return;
    if (trigger !== undefined && !takeTrigger()) return;
    clearInterval(poll);
    if (kind === 'rejection') void Promise.reject(new Error('rejected soon by the test'));
    else throw new Error('thrown soon by the test');
  }, 50);
  poll.unref();
}
