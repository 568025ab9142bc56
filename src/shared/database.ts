import {
  BackendTerminatedError,
  BackendTerminatedUnexpectedlyError,
  ConnectionError,
  createPool,
  createTypeParserPreset,
  SchemaValidationError,
  type DatabasePool,
  type Interceptor,
  type QueryResultRow,
} from 'slonik';
import { createPreparingPgDriverFactory } from './pg-driver.js';

/**
 * Validates every row of a `sql.type(schema)` query with its zod schema. Without this interceptor slonik
 * only uses the schema for static types, and schema drift would go unnoticed.
 */
const resultParserInterceptor: Interceptor = {
  name: 'result-parser',
  transformRow: (context, query, row) => {
    const { resultParser } = context;
    if (!resultParser) return row;
    const parsed = resultParser.safeParse(row);
    if (!parsed.success) throw new SchemaValidationError(query, row, parsed.error.issues);
    return parsed.data as QueryResultRow;
  },
};

export type DatabaseOptions = {
  readonly url: string;
  readonly maximumPoolSize: number;
  /** An idle open write transaction holds back the event feed of every reader; cut it short. */
  readonly idleInTransactionSessionTimeoutMs?: number;
};

/** Creates the slonik pool every role uses. `close()` is `pool.end()`. */
export async function createDatabasePool(options: DatabaseOptions): Promise<DatabasePool> {
  return createPool(options.url, {
    maximumPoolSize: options.maximumPoolSize,
    idleInTransactionSessionTimeout: options.idleInTransactionSessionTimeoutMs ?? 10_000,
    statementTimeout: 60_000,
    interceptors: [resultParserInterceptor],
    driverFactory: createPreparingPgDriverFactory(),
    // slonik's default runs DISCARD ALL on every release: a round trip per checkout on the hot paths. No role
    // leaves session state on a pooled connection (the replay releases its session lock in a finally, the
    // leader lease and LISTEN have their own client), so there is nothing to discard. It must stay so: the
    // driver prepares the hot statements once per connection (pg-driver.ts), and DISCARD ALL would drop them
    // behind its back.
    resetConnection: async () => {},
    // The preset parses int8 to bigint and timestamptz to epoch milliseconds; xid8 has no parser, so queries
    // select it as text.
    typeParsers: createTypeParserPreset(),
  });
}

/**
 * Codes of a failure to reach Postgres rather than of the statement: the socket's (refused, reset, timed out,
 * no route or name), and Postgres's own for a server shutting down or starting up (57P01-57P03) and for a
 * broken connection (class 08).
 */
const UNREACHABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN', '57P01', '57P02', '57P03']);

/**
 * Whether an error says Postgres could not be reached or went away mid-statement (a restart, a failover), as
 * opposed to a statement it refused: what a caller answers with "unavailable, try again". Looks through the
 * `cause` chain, where slonik keeps the driver's error.
 */
export function isDatabaseUnreachable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; current instanceof Error && depth < 5; depth++, current = current.cause) {
    if (current instanceof ConnectionError || current instanceof BackendTerminatedError || current instanceof BackendTerminatedUnexpectedlyError) return true;
    const code = (current as { readonly code?: unknown }).code;
    if (typeof code === 'string' && (UNREACHABLE_CODES.has(code) || code.startsWith('08'))) return true;
    // pg's own words when the server closes the socket under a query.
    if (current.message.startsWith('Connection terminated')) return true;
  }
  return false;
}
