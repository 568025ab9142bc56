import pg from 'pg';
import { sleep } from './sleep.js';

/**
 * Leadership of one named job, held as a session-level advisory lock on a dedicated connection. Postgres
 * releases it when that connection ends, so a killed holder (even SIGKILL) frees it at once and a standby
 * takes over on its next try. The same connection also LISTENs, since it is already held open.
 */
export type LeaderLease = {
  /**
   * Resolves true once this process holds the lease, trying every `retryMs`; false if `signal` aborts first.
   * Rejects if the lease connection is lost meanwhile (a Postgres restart): a standby left without it could
   * never take over, so its role must exit and be started again.
   */
  acquire(signal: AbortSignal): Promise<boolean>;
  /** Aborted when the lease connection fails: leadership is no longer certain, stop working at once. */
  readonly lost: AbortSignal;
  /** Subscribes to a NOTIFY channel on the lease connection. */
  listen(channel: string, onNotify: () => void): Promise<void>;
  close(): Promise<void>;
};

export async function createLeaderLease(options: {
  readonly databaseUrl: string;
  readonly name: string;
  readonly retryMs: number;
}): Promise<LeaderLease> {
  const client = new pg.Client({ connectionString: options.databaseUrl, keepAlive: true });
  const lost = new AbortController();
  client.on('error', (error) => lost.abort(error));
  client.on('end', () => lost.abort(new Error('lease connection ended')));
  await client.connect();
  let held = false;

  return {
    lost: lost.signal,
    async acquire(signal) {
      while (!signal.aborted && !lost.signal.aborted) {
        // A connection ended while the query runs fails the query before the client says so ('end').
        const result = await client
          .query<{ acquired: boolean }>('SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS acquired', [options.name])
          .catch((error: unknown) => {
            throw new Error('lease connection lost while waiting for the lease', { cause: error });
          });
        if (result.rows[0]?.acquired) return (held = true);
        await sleep(options.retryMs, signal);
      }
      if (lost.signal.aborted) throw new Error('lease connection lost while waiting for the lease', { cause: lost.signal.reason });
      return false;
    },
    async listen(channel, onNotify) {
      client.on('notification', (message) => {
        if (message.channel === channel) onNotify();
      });
      await client.query(`LISTEN ${client.escapeIdentifier(channel)}`);
    },
    async close() {
      if (lost.signal.aborted) return;
      if (held) await client.query('SELECT pg_advisory_unlock(hashtextextended($1, 0))', [options.name]);
      await client.end();
    },
  };
}
