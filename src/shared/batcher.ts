/**
 * Group commit in the application: callers submit one item at a time and get its own result, while the
 * items are processed in batches. Items submitted in the same turn of the event loop form one batch, and
 * while `maxConcurrentBatches` batches are running, new items wait and go in the next one. So at a low rate
 * every item runs alone at once, and under load the batches grow by themselves, with no timer to tune.
 */
export type Batcher<I, O> = {
  submit(item: I): Promise<O>;
};

export type BatcherOptions<I, O> = {
  /**
   * Processes a batch; returns one settled result per item, in order. A throw (or a missing result)
   * rejects every item of the batch with that error.
   */
  readonly run: (items: readonly I[]) => Promise<readonly PromiseSettledResult<O>[]>;
  readonly maxBatchSize: number;
  readonly maxConcurrentBatches: number;
  /** Called with each batch's size as it starts (metrics). */
  readonly onBatch?: (size: number) => void;
};

type Waiting<I, O> = {
  readonly item: I;
  readonly resolve: (value: O) => void;
  readonly reject: (reason: unknown) => void;
};

export function createBatcher<I, O>(options: BatcherOptions<I, O>): Batcher<I, O> {
  if (options.maxBatchSize < 1 || options.maxConcurrentBatches < 1) throw new Error('batch size and concurrency must be at least 1');
  let waiting: Waiting<I, O>[] = [];
  let running = 0;
  let flushScheduled = false;

  const settle = (batch: readonly Waiting<I, O>[], results: readonly PromiseSettledResult<O>[]): void => {
    if (results.length !== batch.length) {
      const error = new Error(`batch of ${batch.length} returned ${results.length} results`);
      for (const entry of batch) entry.reject(error);
      return;
    }
    batch.forEach((entry, index) => {
      const result = results[index]!;
      if (result.status === 'fulfilled') entry.resolve(result.value);
      else entry.reject(result.reason);
    });
  };

  const flush = (): void => {
    flushScheduled = false;
    while (running < options.maxConcurrentBatches && waiting.length > 0) {
      const batch = waiting.slice(0, options.maxBatchSize);
      waiting = waiting.slice(batch.length);
      running++;
      options.onBatch?.(batch.length);
      const items = batch.map((entry) => entry.item);
      // A synchronous throw in `run` is a rejected batch too.
      Promise.resolve()
        .then(() => options.run(items))
        .then(
          (results) => settle(batch, results),
          (error: unknown) => {
            for (const entry of batch) entry.reject(error);
          },
        )
        .finally(() => {
          running--;
          // Whatever queued up while this batch ran has waited long enough: no extra turn of the loop.
          flush();
        });
    }
  };

  return {
    submit(item) {
      return new Promise<O>((resolve, reject) => {
        waiting.push({ item, resolve, reject });
        if (!flushScheduled && running < options.maxConcurrentBatches) {
          flushScheduled = true;
          // After the I/O callbacks of this turn: every frame read in it joins the same batch.
          setImmediate(flush);
        }
      });
    },
  };
}
