import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'client/src/**/*.test.ts', 'demo/**/*.test.ts', 'stack/**/*.test.ts', 'bench/**/*.test.ts', 'test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Tests spawn role processes and share one Postgres/NATS/Redis: two files at a time keep 2 cores usable.
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
  },
});
