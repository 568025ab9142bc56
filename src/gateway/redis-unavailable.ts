import type { Logger } from '../shared/logger.js';
import { GatewayError } from './errors.js';

/**
 * Logs a Redis failure and returns the `unavailable` GatewayError (503, `Retry-After: 1`) to throw instead.
 * Only the error's name and message are logged: ioredis errors may carry a command's arguments.
 */
export function redisUnavailable(logger: Logger, error: unknown, what: string): GatewayError {
  const reason = error instanceof Error ? `${error.name}: ${error.message}` : 'unknown error';
  logger.warn({ reason }, `Redis did not answer: ${what}`);
  return new GatewayError('unavailable', `${what} right now; try again`, 1);
}
