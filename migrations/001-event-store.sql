-- The event log: the only source of truth, and the outbox the relay reads.
-- See docs/event-store.md for why the feed is ordered by (transaction_id, global_position).

CREATE SEQUENCE events_global_position_seq AS bigint;

CREATE TABLE events (
  global_position bigint NOT NULL DEFAULT nextval('events_global_position_seq'),
  -- The top-level id of the appending transaction (pg_current_xact_id()), never the xmin system column.
  transaction_id  xid8 NOT NULL,
  stream_id       text NOT NULL,
  -- Gapless position inside the stream, 1, 2, 3, ...: the per-conversation `seq` clients see.
  version         integer NOT NULL CHECK (version > 0),
  event_id        text NOT NULL UNIQUE,
  type            text NOT NULL,
  data            jsonb NOT NULL,
  metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (stream_id, version)
);
ALTER SEQUENCE events_global_position_seq OWNED BY events.global_position;

-- Serves the commit-safe feed: WHERE (transaction_id, global_position) > checkpoint ORDER BY the same.
CREATE INDEX events_feed_idx ON events (transaction_id, global_position);

-- One row per stream: its current version (the expected-version check) and a snapshot of the decider's
-- folded state at that version, so loading a long conversation does not fold its whole history.
CREATE TABLE event_streams (
  stream_id        text PRIMARY KEY,
  stream_type      text NOT NULL,
  version          integer NOT NULL,
  snapshot         jsonb,
  snapshot_schema  integer,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);

-- Checkpoints of the consumers that read the Postgres feed (the relay, the replay CLI).
CREATE TABLE feed_checkpoints (
  consumer        text PRIMARY KEY,
  transaction_id  xid8 NOT NULL DEFAULT '0',
  global_position bigint NOT NULL DEFAULT 0,
  updated_at      timestamptz NOT NULL DEFAULT now()
);

-- Uniqueness across streams, reserved in the same transaction as the events they guard.
-- One conversation per pair of users, whichever of the two starts it.
CREATE TABLE conversation_pairs (
  user_low        bigint NOT NULL,
  user_high       bigint NOT NULL,
  conversation_id text NOT NULL UNIQUE,
  PRIMARY KEY (user_low, user_high),
  CHECK (user_low < user_high)
);

-- A client_msg_id is the sender's idempotency key: a retry returns the message first sent with it.
CREATE TABLE message_client_ids (
  sender_id       bigint NOT NULL,
  client_msg_id   text NOT NULL,
  conversation_id text NOT NULL,
  message_id      text NOT NULL,
  -- The MessageSent event's version in the conversation stream.
  version         integer NOT NULL,
  PRIMARY KEY (sender_id, client_msg_id)
);
