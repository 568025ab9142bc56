/**
 * Shares one asynchronous read among its callers, on one condition: each caller gets the result of a read
 * that started after it called. A caller that finds no read in flight starts one; a caller that finds one in
 * flight (started before it called, so not good enough for it) waits for the next one, which starts as soon
 * as the one in flight settles and is shared by every caller that came in the meantime. At most one read is
 * in flight, and a burst of callers costs two reads, whatever their number.
 *
 * For reads whose answer must be taken after the call (the feed horizon: "every event that commits after
 * this call started sorts after the returned position"; a NATS flush: "the server has processed everything
 * sent before the call"): a shared read keeps that promise for every caller. A failed read fails every caller
 * that shared it; the next caller starts a fresh one.
 *
 * Why: thousands of sockets opening at once (a gateway's restart, a load balancer's rebalance) each need the
 * horizon and a flush. Without sharing, each is its own query or round trip waiting in line behind the
 * others, and everything the opening socket holds meanwhile outlives V8's young generation: it is promoted,
 * then dies in the old space, which grows by kilobytes per socket and is left fragmented (docs/benchmarks.md).
 */
export function startedAfter<T>(read: () => Promise<T>): () => Promise<T> {
  let inFlight: Promise<T> | null = null;
  let next: Promise<T> | null = null;
  const start = (): Promise<T> => {
    const current = read();
    inFlight = current;
    const settled = (): void => {
      if (inFlight === current) inFlight = null;
    };
    current.then(settled, settled);
    return current;
  };
  return () => {
    if (inFlight === null) return start();
    next ??= inFlight.then(ignore, ignore).then(() => {
      next = null;
      return start();
    });
    return next;
  };
}

const ignore = (): void => undefined;
