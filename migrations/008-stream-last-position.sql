-- Where each stream's last event is in the feed, written by every append with the version and the snapshot:
-- what a fast-path copy says of the event before it (docs/delivery.md, "The fast path"), read with the
-- stream's state and without a lookup in `events`. Null for the streams last appended to before this
-- migration, until their next append (their first copy after it then waits for the ordered path).
ALTER TABLE event_streams
  ADD COLUMN last_transaction_id  xid8,
  ADD COLUMN last_global_position bigint;
