-- Generations of the read tables, so the replay CLI can rebuild them beside the live ones and switch reads
-- atomically. The names clients and SQL use, `discussion` and `messages`, become views over the active
-- generation's tables (`discussion_g<N>`, `messages_g<N>`). Simple views are updatable and `FOR UPDATE`
-- locks through them, so the projector writes through the same names; the switch is one
-- `CREATE OR REPLACE VIEW` per table, in the transaction that also moves `active`.

ALTER TABLE discussion RENAME TO discussion_g1;
ALTER TABLE messages RENAME TO messages_g1;
CREATE VIEW discussion AS SELECT * FROM discussion_g1;
CREATE VIEW messages AS SELECT * FROM messages_g1;

CREATE TABLE read_model_generations (
  projection  text PRIMARY KEY,
  -- The generation the views point at. Every projector transaction reads this row FOR SHARE first; the
  -- switch holds it FOR UPDATE, so no projector write falls between the replay's last catch-up and the switch.
  active      integer NOT NULL,
  -- The generation the replay CLI is building, if any: a replay that is started again resumes it.
  building    integer,
  building_started_at timestamptz,
  switched_at timestamptz,
  CHECK (building IS NULL OR building > active)
);
INSERT INTO read_model_generations (projection, active) VALUES ('conversations', 1);
