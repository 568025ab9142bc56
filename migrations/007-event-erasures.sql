-- Erasures of event data (delete for everyone, docs/event-store.md "Erasure"): the log's one exception to
-- append-only. The erasing event and the erasure of the original's fields commit in one transaction; this
-- row records it, with no erased data. `jetstream_erased_at` is set by the relay once the original's copy in
-- the events stream is deleted too; the partial index finds the ones still to do.
CREATE TABLE event_erasures (
  -- The event whose data was erased in place (its `content` set to null).
  event_id            text PRIMARY KEY,
  stream_id           text NOT NULL,
  version             integer NOT NULL,
  -- The event that asked for the erasure (the `MessageDeleted`), appended in the same transaction.
  erased_by_event_id  text NOT NULL UNIQUE,
  erased_at           timestamptz NOT NULL DEFAULT now(),
  jetstream_erased_at timestamptz
);
CREATE INDEX event_erasures_jetstream_pending_idx ON event_erasures (erased_at) WHERE jetstream_erased_at IS NULL;
