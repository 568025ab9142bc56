import type { Logger } from './logger.js';

/** Something that holds a resource and releases it; `timeoutMs`, when given, replaces the shutdown's own. */
export type Closable = { readonly name: string; close(): Promise<void>; readonly timeoutMs?: number };

/**
 * Closes resources in the order given (callers list them from the outermost, e.g. "stop accepting work",
 * to the innermost, e.g. "database pool"), each bounded by a timeout. Installed by `main.ts` only: library
 * code never registers signal handlers. A second signal exits at once.
 * @returns the shutdown function, for a role that must stop on its own (a fatal error).
 */
export function installShutdown(options: {
  readonly logger: Logger;
  readonly phases: readonly Closable[];
  readonly timeoutMs?: number;
}): (reason: string) => Promise<void> {
  const { logger, phases } = options;
  const timeoutMs = options.timeoutMs ?? 10_000;
  let shuttingDown: Promise<void> | undefined;

  const shutdown = (reason: string): Promise<void> => {
    shuttingDown ??= (async () => {
      logger.info({ reason }, 'shutting down');
      let failed = false;
      for (const phase of phases) {
        try {
          await withTimeout(phase.close(), phase.timeoutMs ?? timeoutMs, phase.name);
          logger.info({ phase: phase.name }, 'shutdown phase done');
        } catch (error) {
          failed = true;
          logger.error({ err: error, phase: phase.name }, 'shutdown phase failed');
        }
      }
      logger.info('stopped');
      // Exit even if a client still holds a timer (NATS reconnecting to a server that is gone, say).
      process.exit(failed ? 1 : (process.exitCode ?? 0));
    })();
    return shuttingDown;
  };

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (shuttingDown) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      void shutdown(signal);
    });
  }
  return shutdown;
}

async function withTimeout(promise: Promise<void>, ms: number, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not close within ${ms} ms`)), ms);
  });
  try {
    await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Shuts the role down with exit code 1 if its main loop (`done`) fails. */
export function shutdownOnFailure(
  done: Promise<void>,
  options: { readonly logger: Logger; readonly shutdown: (reason: string) => Promise<void>; readonly what: string },
): void {
  done.catch((error: unknown) => {
    options.logger.fatal({ err: error }, `${options.what} failed`);
    process.exitCode = 1;
    void options.shutdown(`${options.what} failed`);
  });
}
