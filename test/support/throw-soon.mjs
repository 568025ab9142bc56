// Preloaded into a role by test/integration/shared/process-hygiene.test.ts (`node --import <this file>`):
// once the role has installed its handlers (an uncaughtException listener and, last, its SIGTERM shutdown),
// or after THROW_SOON_DEADLINE_MS regardless, throws an error nothing catches (THROW_SOON=exception) or
// rejects a promise nobody awaits (THROW_SOON=rejection). No hook in the role's own code.

import { clearInterval, setInterval } from 'node:timers';

const kind = process.env.THROW_SOON ?? 'exception';
const deadline = Date.now() + Number(process.env.THROW_SOON_DEADLINE_MS ?? 30_000);
const ready = () => process.listenerCount('uncaughtException') > 0 && process.listenerCount('SIGTERM') > 0;

const poll = setInterval(() => {
  if (!ready() && Date.now() < deadline) return;
  clearInterval(poll);
  if (kind === 'rejection') void Promise.reject(new Error('rejected soon by the test'));
  else throw new Error('thrown soon by the test');
}, 50);
poll.unref();
