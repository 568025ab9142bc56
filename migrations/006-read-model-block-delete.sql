-- Read tables for blocking and deleting for everyone (docs/api.md):
--   discussion.blocked_by            who blocked the conversation, null when it is not blocked;
--   discussion.last_message_version  the version of the message `last_message_content` was taken from, so a
--                                    delete of that message can blank it (it never shows deleted text);
--   messages.msg                     null for a tombstone;
--   messages.deleted_at              when the message was deleted for everyone, null when it was not.
-- The columns go on the active generation and on a half-built one the replay CLI would resume (every
-- generation has the same shape: `createTablesLike` copies the active one), then the views are recreated:
-- `SELECT *` in a view is expanded when the view is created, so new columns appear only in a new view.
-- last_message_version of rows already projected is the version of their newest message.

DO $$
DECLARE
  generations record;
  generation integer;
BEGIN
  -- The switch's lock (migration 003): no replay switches generations while this runs.
  SELECT active, building INTO generations FROM read_model_generations WHERE projection = 'conversations' FOR UPDATE;
  FOREACH generation IN ARRAY array_remove(ARRAY[generations.active, generations.building], NULL) LOOP
    IF to_regclass(format('discussion_g%s', generation)) IS NULL THEN
      CONTINUE;
    END IF;
    EXECUTE format('ALTER TABLE %I ADD COLUMN blocked_by bigint, ADD COLUMN last_message_version integer',
                   format('discussion_g%s', generation));
    EXECUTE format('ALTER TABLE %I ALTER COLUMN msg DROP NOT NULL, ADD COLUMN deleted_at timestamptz',
                   format('messages_g%s', generation));
    EXECUTE format(
      'UPDATE %I AS d SET last_message_version = m.version
       FROM (SELECT conv_id, max(version) AS version FROM %I GROUP BY conv_id) AS m
       WHERE m.conv_id = d.id',
      format('discussion_g%s', generation), format('messages_g%s', generation));
  END LOOP;
  EXECUTE format('CREATE OR REPLACE VIEW discussion AS SELECT * FROM %I', format('discussion_g%s', generations.active));
  EXECUTE format('CREATE OR REPLACE VIEW messages AS SELECT * FROM %I', format('messages_g%s', generations.active));
END
$$;
