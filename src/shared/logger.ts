import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Structured JSON logs, one logger per role. Anything that looks like a credential is redacted, so a token
 * that reaches a log call by mistake is never written out.
 */
export function createLogger(options: { readonly role: string; readonly level: string }): Logger {
  return pino({
    level: options.level,
    base: { role: options.role, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: {
      paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization', 'password', '*.password'],
      censor: '[redacted]',
    },
  });
}
