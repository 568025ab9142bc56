// @ts-check
/**
 * StrykerJS over the pure, unit-tested modules (`npm run test:stryker`; docs/mutants.md). Each mutant runs
 * only the unit tests that cover it (vitest.unit.config.ts: no servers). Reports: reports/mutation/.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  vitest: { configFile: 'vitest.unit.config.ts' },
  coverageAnalysis: 'perTest',
  mutate: [
    'src/commands/conversation/conversation.ts',
    'src/commands/conversation/message-content.ts',
    'src/commands/conversation/events.ts',
    'src/projections/conversation/conversation-fold.ts',
    'src/delivery/cursor.ts',
    'src/delivery/event-frames.ts',
    'src/gateway/ws/delivery-gate.ts',
    'src/gateway/presence/presence-machine.ts',
    'src/gateway/ws/client-frames.ts',
    'src/gateway/auth/canonical-token.ts',
  ],
  // Two cores shared with the other test runs of the machine.
  concurrency: 1,
  timeoutMS: 10_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
};
