import { describe, expect, it } from 'vitest';
import { createBatcher } from './batcher.js';

/** A batch runner that records its batches and answers when the test releases them. */
function recordingRunner() {
  const batches: number[][] = [];
  const releases: (() => void)[] = [];
  const run = async (items: readonly number[]): Promise<PromiseSettledResult<string>[]> => {
    batches.push([...items]);
    await new Promise<void>((resolve) => releases.push(resolve));
    return items.map((item) =>
      item < 0 ? { status: 'rejected', reason: new Error(`refused ${item}`) } : { status: 'fulfilled', value: `done ${item}` },
    );
  };
  const releaseAll = async () => {
    while (releases.length > 0) {
      releases.shift()!();
      await new Promise((resolve) => setImmediate(resolve));
    }
  };
  return { batches, releases, run, releaseAll };
}

const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe('createBatcher', () => {
  it('puts the items submitted in one turn of the event loop in one batch, and settles each on its own', async () => {
    const runner = recordingRunner();
    const batcher = createBatcher({ run: runner.run, maxBatchSize: 10, maxConcurrentBatches: 1 });
    const results = [1, -2, 3].map((item) => batcher.submit(item).then((value) => value, (error: Error) => error.message));
    await nextTurn();
    expect(runner.batches).toEqual([[1, -2, 3]]);
    await runner.releaseAll();
    expect(await Promise.all(results)).toEqual(['done 1', 'refused -2', 'done 3']);
  });

  it('runs at most maxConcurrentBatches at once; what arrives meanwhile goes in the next batch, up to maxBatchSize', async () => {
    const runner = recordingRunner();
    const batcher = createBatcher({ run: runner.run, maxBatchSize: 3, maxConcurrentBatches: 2 });
    const results: Promise<string>[] = [];
    results.push(batcher.submit(1));
    await nextTurn();
    results.push(batcher.submit(2));
    await nextTurn();
    // Two batches running: these wait, whatever turn they arrive in.
    for (const item of [3, 4, 5, 6, 7]) {
      results.push(batcher.submit(item));
      await nextTurn();
    }
    expect(runner.batches).toEqual([[1], [2]]);
    runner.releases.shift()!();
    await nextTurn();
    expect(runner.batches).toEqual([[1], [2], [3, 4, 5]]);
    await runner.releaseAll();
    expect(runner.batches).toEqual([[1], [2], [3, 4, 5], [6, 7]]);
    expect(await Promise.all(results)).toEqual([1, 2, 3, 4, 5, 6, 7].map((item) => `done ${item}`));
  });

  it('rejects every item of a batch whose run throws or answers for the wrong number of items, and goes on', async () => {
    let calls = 0;
    const batcher = createBatcher<number, number>({
      maxBatchSize: 10,
      maxConcurrentBatches: 1,
      run: async (items) => {
        calls++;
        await Promise.resolve();
        if (calls === 1) throw new Error('database down');
        if (calls === 2) return [{ status: 'fulfilled', value: 1 }];
        return items.map((item) => ({ status: 'fulfilled', value: item * 10 }));
      },
    });
    const first = [1, 2].map((item) => batcher.submit(item).catch((error: Error) => error.message));
    expect(await Promise.all(first)).toEqual(['database down', 'database down']);
    const second = [1, 2].map((item) => batcher.submit(item).catch((error: Error) => error.message));
    expect(await Promise.all(second)).toEqual(['batch of 2 returned 1 results', 'batch of 2 returned 1 results']);
    expect(await batcher.submit(4)).toBe(40);
  });
});
