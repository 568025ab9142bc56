-- Lookups on the log for blocking and deleting (docs/event-store.md):
-- the block in force at any version of a conversation (the latest block or unblock at or before it), read
-- by the fan-out and the catch-up, which frame each event by the block of its time. Blocks are rare: the
-- partial index stays tiny however long the log.
CREATE INDEX events_block_changes_idx ON events (stream_id, version)
  WHERE type IN ('ConversationBlocked', 'ConversationUnblocked');

-- A delete names only the message: this finds its conversation and version in the log, the write side's
-- own answer (the read tables may lag behind).
CREATE INDEX events_message_id_idx ON events ((data ->> 'message_id'))
  WHERE type = 'MessageSent';
