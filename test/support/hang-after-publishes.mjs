// A fault for tests, preloaded into the notifier (`node --import <this file>`): once HANG_AFTER_PUBLISHES
// notifications were published (publish-once.ts's script answered 1), it prints "hanging after publishes"
// and no Redis script call answers any more, the one that just published included. The batch in flight
// then never gets acked: a SIGKILL now is a crash between publish and ack. No hook in the role.

import { Redis } from 'ioredis';

const limit = Number(process.env.HANG_AFTER_PUBLISHES ?? 1);
const evaluate = Redis.prototype.eval;
let published = 0;
let hanging = false;

Redis.prototype.eval = async function (...args) {
  if (hanging) return new Promise(() => undefined);
  const reply = await evaluate.apply(this, args);
  if (reply === 1 && ++published >= limit) {
    hanging = true;
    process.stdout.write(`hanging after publishes: ${published}\n`);
    return new Promise(() => undefined);
  }
  return reply;
};
