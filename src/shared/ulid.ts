import { randomFillSync } from 'node:crypto';
import { monotonicFactory, ulid } from 'ulid';

/**
 * Random bytes for ULIDs, drawn from the system's CSPRNG 4 KiB at a time. The `ulid` package's default
 * generator calls `crypto.getRandomValues` once per character (16 per id), which showed as 5 % of the
 * gateway's CPU under load.
 */
const randomBytes = new Uint8Array(4_096);
let nextByte = randomBytes.length;

/** The PRNG the `ulid` package takes: a float in [0, 1) with 8 random bits, as its default one has. */
export function bufferedRandom(): number {
  if (nextByte === randomBytes.length) {
    randomFillSync(randomBytes);
    nextByte = 0;
  }
  return randomBytes[nextByte++]! / 256;
}

/** A new ULID (event ids, request ids). One held long, as a socket's request id, is worth `flatString`. */
export const newUlid = (): string => ulid(undefined, bufferedRandom);

/** ULIDs that also sort in creation order within one process (conversation and message ids). */
export const monotonicUlids = (): (() => string) => {
  const next = monotonicFactory(bufferedRandom);
  return () => next();
};
