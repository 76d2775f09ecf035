-- ACP: what a thread's next session needs to continue its conversation (session/load of the agent session id, in
-- the same cwd) and the model and mode its users chose (re-applied on resume). One row per thread.
CREATE TABLE thread_agent (
  thread_id         TEXT PRIMARY KEY,
  agent_session_id  TEXT,
  cwd               TEXT NOT NULL,
  model_id          TEXT,
  mode_id           TEXT,
  updated_at        INTEGER NOT NULL
);
-- Which agent session (ACP id) each bot session ran, for history.
ALTER TABLE sessions ADD COLUMN agent_session_id TEXT;
ALTER TABLE sessions ADD COLUMN protocol TEXT;
