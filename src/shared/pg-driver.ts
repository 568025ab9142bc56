import pg from 'pg';
import { parse as parseArray } from 'postgres-array';
import {
  BackendTerminatedError,
  BackendTerminatedUnexpectedlyError,
  CheckExclusionConstraintViolationError,
  CheckIntegrityConstraintViolationError,
  createDriverFactory,
  ForeignKeyIntegrityConstraintViolationError,
  IdleTransactionTimeoutError,
  InputSyntaxError,
  InvalidInputError,
  NotNullIntegrityConstraintViolationError,
  parseDsn,
  StatementCancelledError,
  StatementTimeoutError,
  UniqueIntegrityConstraintViolationError,
  type DriverConfiguration,
  type DriverFactory,
  type DriverTypeParser,
  type Query,
} from 'slonik';

/**
 * Which statements a process prepares once per connection and then only binds and executes. Postgres plans
 * an unnamed statement every time it runs it, and for the hot statements here (the append, the feed read,
 * the projector's writes) planning costs about as much as executing. A statement is named from its second
 * use, so a one-off text (say, a query built with a variable list) takes no name, and DDL never does; at
 * most `limit` texts are tracked and named per process, which bounds the prepared statements of every
 * connection.
 */
export type StatementNames = { nameFor(text: string): string | undefined };

const PREPARABLE = /^\s*(?:SELECT|WITH|INSERT|UPDATE|DELETE)\b/i;

export function createStatementNames(limit = 500): StatementNames {
  const seen = new Map<string, string | null>();
  let named = 0;
  return {
    nameFor(text) {
      const known = seen.get(text);
      if (typeof known === 'string') return known;
      if (known === undefined) {
        // First use: remember the text, within the limit.
        if (seen.size < limit && PREPARABLE.test(text)) seen.set(text, null);
        return undefined;
      }
      // Second use: it is a statement of this code, not a one-off. Give it a name.
      const name = `matcha_${++named}`;
      seen.set(text, name);
      return name;
    },
  };
}

/**
 * slonik's pg driver (`@slonik/pg-driver`, which sends every statement unnamed) with named statements from
 * `createStatementNames`. Connection options, type parsers and error classes are slonik's, as in its
 * driver (version 47.3: compare with `createPgDriverFactory` there when upgrading slonik). Streams are not
 * offered: nothing in this service streams a result.
 */
export function createPreparingPgDriverFactory(names: StatementNames = createStatementNames()): DriverFactory {
  return createDriverFactory(async ({ driverConfiguration }) => {
    const connection = clientConfigurationOf(driverConfiguration);
    const clientConfiguration: pg.ClientConfig = {
      ...connection,
      types: { getTypeParser: await typeParserLookup(connection, driverConfiguration.typeParsers) },
    };
    return {
      createPoolClient: ({ clientEventEmitter }) => {
        const client = new pg.Client(clientConfiguration);
        const onError = (error: Error) => clientEventEmitter.emit('error', wrapError(error, null));
        const onNotice = (notice: { message?: string | undefined }) => {
          if (notice.message) clientEventEmitter.emit('notice', { message: notice.message });
        };
        client.on('error', onError);
        client.on('notice', onNotice);
        return Promise.resolve({
          connect: async () => {
            await client.connect();
          },
          end: async () => {
            await client.end();
            client.removeListener('error', onError);
            client.removeListener('notice', onNotice);
          },
          query: async (text, values) => {
            const name = names.nameFor(text);
            let result: pg.QueryResult<Record<string, unknown>>;
            try {
              result = await client.query<Record<string, unknown>>({ text, values: values ?? [], ...(name !== undefined && { name }) });
            } catch (error) {
              throw wrapError(error as Error, { sql: text, values: (values ?? []) as Query['values'] });
            }
            return {
              command: result.command as 'SELECT',
              fields: result.fields.map((field) => ({ dataTypeId: field.dataTypeID, name: field.name })),
              rowCount: result.rowCount,
              rows: result.rows,
            };
          },
          stream: () => {
            throw new Error('this service does not stream query results; use a cursor query instead');
          },
        });
      },
    };
  });
}

function clientConfigurationOf(configuration: DriverConfiguration): pg.ClientConfig {
  const dsn = parseDsn(configuration.connectionUri);
  const timeout = (value: 'DISABLE_TIMEOUT' | number) => (value === 'DISABLE_TIMEOUT' ? undefined : Math.max(1, value));
  const connectionTimeoutMillis = timeout(configuration.connectionTimeout);
  const statementTimeout = timeout(configuration.statementTimeout);
  const idleInTransactionTimeout = timeout(configuration.idleInTransactionSessionTimeout);
  return {
    ...(dsn.applicationName !== undefined && { application_name: dsn.applicationName }),
    ...(dsn.databaseName !== undefined && { database: dsn.databaseName }),
    ...(dsn.host !== undefined && { host: dsn.host }),
    ...(dsn.options !== undefined && { options: dsn.options }),
    ...(dsn.password !== undefined && { password: dsn.password }),
    ...(dsn.port !== undefined && { port: dsn.port }),
    ...(dsn.username !== undefined && { user: dsn.username }),
    ssl: configuration.ssl ?? (dsn.sslMode === 'require' ? true : dsn.sslMode === 'no-verify' ? { rejectUnauthorized: false } : false),
    ...(connectionTimeoutMillis !== undefined && { connectionTimeoutMillis }),
    ...(statementTimeout !== undefined && { statement_timeout: statementTimeout }),
    ...(idleInTransactionTimeout !== undefined && { idle_in_transaction_session_timeout: idleInTransactionTimeout }),
  };
}

/** slonik's type parsers by the oids of their types (and of the types' arrays), pg's for every other type. */
async function typeParserLookup(
  configuration: pg.ClientConfig,
  typeParsers: readonly DriverTypeParser[],
): Promise<(oid: number) => (value: string) => unknown> {
  const client = new pg.Client(configuration);
  await client.connect();
  let rows: { oid: number; typarray: number; typname: string }[];
  try {
    ({ rows } = await client.query('SELECT oid, typarray, typname FROM pg_type WHERE typname = ANY($1::text[])', [
      typeParsers.map((parser) => parser.name),
    ]));
  } finally {
    await client.end();
  }
  const parsers = new Map<number, (value: string) => unknown>();
  for (const typeParser of typeParsers) {
    const type = rows.find((row) => row.typname === typeParser.name);
    if (!type) throw new Error(`Database type "${typeParser.name}" not found.`);
    parsers.set(type.oid, (value) => typeParser.parse(value));
    if (type.typarray) parsers.set(type.typarray, (value) => parseArray(value, (element) => typeParser.parse(element)));
  }
  const pgParser = pg.types.getTypeParser as (oid: number) => (value: string) => unknown;
  return (oid) => parsers.get(oid) ?? pgParser(oid);
}

const hasCode = (error: Error): error is Error & { code: string } => typeof (error as { code?: unknown }).code === 'string';

/** Postgres errors as slonik's error classes, as slonik's own driver maps them. */
function wrapError(error: Error, query: Query | null): Error {
  const message = error.message.toLowerCase();
  if (message.includes('connection terminated unexpectedly')) return new BackendTerminatedUnexpectedlyError(error);
  if (message.includes('connection terminated')) return new BackendTerminatedError(error);
  if (!hasCode(error)) return error;
  switch (error.code) {
    case '22P02':
      return new InvalidInputError(error.message);
    case '25P03':
      return new IdleTransactionTimeoutError(error);
    case '57P01':
      return new BackendTerminatedError(error);
    case '57014':
      return error.message.includes('canceling statement due to user request')
        ? new StatementCancelledError(error)
        : new StatementTimeoutError(error);
    case '23502':
      return new NotNullIntegrityConstraintViolationError(error);
    case '23503':
      return new ForeignKeyIntegrityConstraintViolationError(error);
    case '23505':
      return new UniqueIntegrityConstraintViolationError(error);
    case '23P01':
      return new CheckExclusionConstraintViolationError(error);
    case '23514':
      return new CheckIntegrityConstraintViolationError(error);
    case '42601':
      return query ? new InputSyntaxError(error, query) : error;
    default:
      return error;
  }
}
