-- Read tables, built by the projector from the event log. They keep the seed's names and columns, so
-- existing clients and SQL keep working, plus what the product needs: the applied stream version (the
-- projector's idempotency guard) and each participant's unread count.

CREATE TABLE discussion (
  id                   text PRIMARY KEY,
  user1_id             bigint NOT NULL,
  user2_id             bigint NOT NULL,
  last_message_content text,
  last_message_at      timestamptz,
  created_at           timestamptz NOT NULL,
  updated_at           timestamptz NOT NULL,
  -- Last event version of the conversation applied here: an event at or below it is a duplicate.
  version              integer NOT NULL,
  user1_unread         integer NOT NULL DEFAULT 0,
  user2_unread         integer NOT NULL DEFAULT 0,
  -- last_message_at, or created_at before the first message: the "most recent activity" order.
  last_activity_at     timestamptz NOT NULL,
  CHECK (user1_id < user2_id)
);
CREATE INDEX discussion_user1_activity_idx ON discussion (user1_id, last_activity_at DESC, id DESC);
CREATE INDEX discussion_user2_activity_idx ON discussion (user2_id, last_activity_at DESC, id DESC);

CREATE TABLE messages (
  id            text PRIMARY KEY,
  conv_id       text NOT NULL,
  sender_id     bigint NOT NULL,
  msg           text NOT NULL,
  time          timestamptz NOT NULL,
  read_at       timestamptz,
  client_msg_id text,
  -- The message's event version in its conversation (its `seq`); pages are keyed on it.
  version       integer NOT NULL,
  UNIQUE (conv_id, version)
);
-- Marking read touches only the unread messages of a conversation.
CREATE INDEX messages_unread_idx ON messages (conv_id, version) WHERE read_at IS NULL;

-- Events the projector could not apply after its retries: recorded, never silently dropped.
CREATE TABLE projection_failures (
  event_id     text PRIMARY KEY,
  stream_id    text NOT NULL,
  version      integer NOT NULL,
  type         text NOT NULL,
  error        text NOT NULL,
  attempts     integer NOT NULL,
  failed_at    timestamptz NOT NULL DEFAULT now()
);
