import type { Logger } from './logger.js';

export type ProcessHygiene = {
  /** From now on a fatal error stops the role through `shutdown` (installShutdown's) rather than at once. */
  shutDownWith(shutdown: (reason: string) => Promise<void>): void;
};

/**
 * What a role does with an error nothing caught (`uncaughtException`, `unhandledRejection`): one fatal log
 * line through its logger, with the error, then an orderly exit with code 1: its shutdown when installed,
 * bounded by `exitTimeoutMs`, else at once. Whatever state the error left behind is not trusted to go on
 * serving; under `npm start` or an orchestrator the role is started again. Installed by `main.ts` only,
 * first thing after the logger, so that errors while starting are caught too.
 */
export function installProcessHygiene(options: { readonly logger: Logger; readonly exitTimeoutMs?: number }): ProcessHygiene {
  const { logger } = options;
  const exitTimeoutMs = options.exitTimeoutMs ?? 15_000;
  let shutdown: ((reason: string) => Promise<void>) | undefined;
  let failing = false;

  const fail = (error: unknown, what: string): void => {
    logger.fatal({ err: error }, what);
    if (failing) return;
    failing = true;
    process.exitCode = 1;
    if (!shutdown) process.exit(1);
    setTimeout(() => {
      logger.error({ timeoutMs: exitTimeoutMs }, 'shutdown after a fatal error took too long; exiting now');
      process.exit(1);
    }, exitTimeoutMs);
    void shutdown(what).finally(() => process.exit(1));
  };

  // A rejected top-level await arrives here, its origin saying so.
  process.on('uncaughtException', (error, origin) =>
    fail(error, origin === 'unhandledRejection' ? 'unhandled rejection' : 'uncaught exception'),
  );
  process.on('unhandledRejection', (reason) => fail(reason, 'unhandled rejection'));

  return {
    shutDownWith(installed) {
      shutdown = installed;
    },
  };
}
