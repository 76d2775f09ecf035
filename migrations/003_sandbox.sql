-- Which isolation each agent ran under: 'bwrap' (its own sandbox) or 'off' (unsandboxed); NULL for sessions
-- recorded before this column existed or that never spawned.
ALTER TABLE sessions ADD COLUMN isolation TEXT;
