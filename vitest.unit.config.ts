import { defineConfig } from 'vitest/config';

/**
 * The unit tests beside the code, without the global setup that starts Postgres, NATS and Redis: what
 * StrykerJS runs for every mutant (`npm run test:stryker`, stryker.config.mjs).
 */
export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'client/src/**/*.test.ts', 'demo/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 1,
  },
});
