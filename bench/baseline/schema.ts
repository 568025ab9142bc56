import { sql, type DatabasePool } from 'slonik';

/**
 * The seed's two tables under their own names, so the baseline can share a database with anything:
 * serial ids, the seed's columns and its recommended indexes, plus the unique pair that makes "one
 * conversation per pair of users" hold. Created at start; instances starting together take turns.
 */
export async function ensureBaselineSchema(pool: DatabasePool): Promise<void> {
  await pool.transaction(async (transaction) => {
    await transaction.query(sql.unsafe`SELECT pg_advisory_xact_lock(hashtext('baseline_schema'))`);
    await transaction.query(sql.unsafe`
      CREATE TABLE IF NOT EXISTS baseline_discussion (
        id serial PRIMARY KEY,
        user1_id integer NOT NULL,
        user2_id integer NOT NULL,
        last_message_content text,
        last_message_at timestamptz,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        CHECK (user1_id < user2_id),
        UNIQUE (user1_id, user2_id)
      )`);
    await transaction.query(sql.unsafe`
      CREATE TABLE IF NOT EXISTS baseline_messages (
        id serial PRIMARY KEY,
        conv_id integer NOT NULL REFERENCES baseline_discussion (id),
        sender_id integer NOT NULL,
        msg text NOT NULL,
        time timestamptz NOT NULL DEFAULT now(),
        read_at timestamptz
      )`);
    await transaction.query(sql.unsafe`CREATE INDEX IF NOT EXISTS baseline_discussion_user2 ON baseline_discussion (user2_id)`);
    await transaction.query(sql.unsafe`CREATE INDEX IF NOT EXISTS baseline_messages_conv_time ON baseline_messages (conv_id, time DESC)`);
    await transaction.query(sql.unsafe`CREATE INDEX IF NOT EXISTS baseline_messages_unread ON baseline_messages (conv_id, sender_id, read_at)`);
  });
}
