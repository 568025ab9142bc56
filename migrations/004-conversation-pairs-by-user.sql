-- The catch-up of a reconnecting socket looks up every conversation of one user: the primary key serves
-- `user_low = $1`, this index serves `user_high = $1` (without it, a sequential scan of every pair).
CREATE INDEX conversation_pairs_user_high_idx ON conversation_pairs (user_high);
