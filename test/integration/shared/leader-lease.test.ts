import { sql, type DatabasePool } from 'slonik';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createDatabasePool } from '../../../src/shared/database.js';
import { createLeaderLease, type LeaderLease } from '../../../src/shared/leader-lease.js';
import { createTestDatabase } from '../../support/infra.js';

/** The leader lease on a real Postgres: who holds it, and what a waiting standby does when its connection dies. */

let databaseUrl: string;
let admin: DatabasePool;
const leases: LeaderLease[] = [];

beforeAll(async () => {
  databaseUrl = await createTestDatabase();
  admin = await createDatabasePool({ url: databaseUrl, maximumPoolSize: 1 });
});

afterAll(async () => {
  await Promise.allSettled(leases.map((lease) => lease.close()));
  await admin?.end();
});

async function lease(name: string): Promise<LeaderLease> {
  const created = await createLeaderLease({ databaseUrl, name, retryMs: 50 });
  leases.push(created);
  return created;
}

/** What the relay and the fan-out pass to `acquire`: their own stop, or the lease's loss. */
const stopOrLoss = (of: LeaderLease, stop = new AbortController()) => AbortSignal.any([stop.signal, of.lost]);

describe('the leader lease', () => {
  it('is held by one process at a time; a standby gives up quietly when its own caller stops', async () => {
    const holder = await lease('lease-one-holder');
    expect(await holder.acquire(stopOrLoss(holder))).toBe(true);
    const standby = await lease('lease-one-holder');
    const stop = new AbortController();
    const waiting = standby.acquire(stopOrLoss(standby, stop));
    stop.abort();
    expect(await waiting).toBe(false);
  });

  it('fails a waiting standby whose connection is lost (a Postgres restart), so that its role is restarted', async () => {
    const holder = await lease('lease-lost-standby');
    expect(await holder.acquire(stopOrLoss(holder))).toBe(true);
    const standby = await lease('lease-lost-standby');
    const refused = expect(standby.acquire(stopOrLoss(standby))).rejects.toThrow(/lease connection lost/);
    // Every lease connection of this database ends, as in a Postgres restart.
    await admin.query(sql.unsafe`
      SELECT pg_terminate_backend(pid) FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%pg_try_advisory_lock%'`);
    await refused;
    await vi.waitFor(() => expect(holder.lost.aborted).toBe(true));
  });
});
