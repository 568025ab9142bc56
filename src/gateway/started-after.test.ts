import { describe, expect, it } from 'vitest';
import { startedAfter } from './started-after.js';

/** A read whose answers the test gives by hand, counting how many were started. */
function manualReads() {
  const pending: { resolve: (value: number) => void; reject: (error: Error) => void }[] = [];
  let started = 0;
  const read = (): Promise<number> => {
    started++;
    return new Promise<number>((resolve, reject) => pending.push({ resolve, reject }));
  };
  return { read, pending, started: () => started };
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

describe('startedAfter', () => {
  it('given no read in flight, a caller starts one and gets its answer', async () => {
    const reads = manualReads();
    const shared = startedAfter(reads.read);
    const answer = shared();
    expect(reads.started()).toBe(1);
    reads.pending[0]!.resolve(7);
    await expect(answer).resolves.toBe(7);
  });

  it('given a read in flight, callers do not share it (it started before them) but share the next, started once it settled', async () => {
    const reads = manualReads();
    const shared = startedAfter(reads.read);
    const first = shared();
    const second = shared();
    const third = shared();
    expect(reads.started()).toBe(1);
    reads.pending[0]!.resolve(1);
    await expect(first).resolves.toBe(1);
    await tick();
    expect(reads.started()).toBe(2);
    // A caller during the second read waits for a third, not for the second.
    const fourth = shared();
    reads.pending[1]!.resolve(2);
    await expect(second).resolves.toBe(2);
    await expect(third).resolves.toBe(2);
    await tick();
    expect(reads.started()).toBe(3);
    reads.pending[2]!.resolve(3);
    await expect(fourth).resolves.toBe(3);
  });

  it('given the read in flight fails, the callers waiting for the next still get a read of their own', async () => {
    const reads = manualReads();
    const shared = startedAfter(reads.read);
    const first = shared();
    const second = shared();
    reads.pending[0]!.reject(new Error('database down'));
    await expect(first).rejects.toThrow('database down');
    await tick();
    expect(reads.started()).toBe(2);
    reads.pending[1]!.resolve(5);
    await expect(second).resolves.toBe(5);
  });

  it('given a shared read fails, every caller sharing it fails, and the next caller starts afresh', async () => {
    const reads = manualReads();
    const shared = startedAfter(reads.read);
    const first = shared();
    const second = shared();
    const third = shared();
    reads.pending[0]!.resolve(1);
    await first;
    await tick();
    reads.pending[1]!.reject(new Error('timeout'));
    await expect(second).rejects.toThrow('timeout');
    await expect(third).rejects.toThrow('timeout');
    await tick();
    const fourth = shared();
    expect(reads.started()).toBe(3);
    reads.pending[2]!.resolve(9);
    await expect(fourth).resolves.toBe(9);
  });

  it('given a read that settled, the next caller starts a new one rather than reusing the old answer', async () => {
    const reads = manualReads();
    const shared = startedAfter(reads.read);
    const first = shared();
    reads.pending[0]!.resolve(1);
    await first;
    await tick();
    const second = shared();
    expect(reads.started()).toBe(2);
    reads.pending[1]!.resolve(2);
    await expect(second).resolves.toBe(2);
  });
});
