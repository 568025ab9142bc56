import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * Errors are logged by name, code, message and stack only. Other properties are whatever the thrower put
 * there: Node's HTTP parser puts the request's raw bytes in `rawPacket`, a URL error its `input`, a
 * client library its command's arguments; any of them may hold a token.
 */
function safeError(error: unknown): unknown {
  if (!(error instanceof Error)) return error;
  const code = (error as { code?: unknown }).code;
  return {
    type: error.name,
    message: scrubTokens(error.message),
    ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
    ...(error.stack === undefined ? {} : { stack: scrubTokens(error.stack) }),
  };
}

/**
 * A compact JWS starts with `eyJ` (base64 of `{"`); whatever follows it up to the end of the signature is cut,
 * so a token that reaches a message, a path or a field we did not think of is still never written out.
 */
const COMPACT_TOKEN = /eyJ[A-Za-z0-9_-]*(?:[.][A-Za-z0-9_\-+/=%]*){0,2}/g;

export function scrubTokens(text: string): string {
  return text.replace(COMPACT_TOKEN, '[token]');
}

/**
 * Structured JSON logs, one logger per role. Anything that looks like a credential is redacted, so a token
 * that reaches a log call by mistake is never written out: known fields by name, errors by `safeError`, and
 * every line, last, by `scrubTokens`.
 */
export function createLogger(options: { readonly role: string; readonly level: string }): Logger {
  return pino({
    level: options.level,
    base: { role: options.role, pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    serializers: { err: safeError, error: safeError },
    redact: {
      paths: ['token', '*.token', 'authorization', '*.authorization', 'headers.authorization', 'password', '*.password'],
      censor: '[redacted]',
    },
    hooks: { streamWrite: scrubTokens },
  });
}
