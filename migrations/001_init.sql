-- Sessions: one row per agent session, closed with an end reason from CONTRACT.md.
CREATE TABLE sessions (
  id            TEXT PRIMARY KEY,
  thread_id     TEXT NOT NULL,
  channel_id    TEXT,
  user_id       TEXT,
  instance_id   TEXT NOT NULL,
  pid           INTEGER,
  pid_start     INTEGER,
  marker        TEXT NOT NULL,
  cwd           TEXT NOT NULL,
  command       TEXT NOT NULL,           -- JSON array: file then arguments
  started_at    INTEGER NOT NULL,        -- ms since epoch
  ready_at      INTEGER,
  ended_at      INTEGER,
  end_reason    TEXT CHECK (end_reason IN ('archived','deleted','idle_ttl','evicted','cpu_limit','memory_limit',
                  'stuck','reset','crashed','shutdown','bot_restart','spawn_failed')),
  exit_code     INTEGER,
  exit_signal   INTEGER,
  kill_signal   TEXT,                    -- SIGTERM, SIGKILL or none
  forced        INTEGER,                 -- 1 when SIGKILL was needed
  pids_killed   TEXT,                    -- JSON array
  teardown_ms   REAL,
  peak_cpu      REAL,
  peak_mem_mb   REAL,
  turns         INTEGER NOT NULL DEFAULT 0,
  last_output   TEXT
);
CREATE INDEX sessions_thread ON sessions (thread_id, started_at);
CREATE INDEX sessions_open ON sessions (ended_at) WHERE ended_at IS NULL;
CREATE INDEX sessions_reason ON sessions (end_reason, ended_at);

-- Lifecycle events of a session: spawn, ready, turn_start, turn_end, permission, limit warnings, close.
CREATE TABLE events (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  session_id  TEXT NOT NULL REFERENCES sessions (id),
  at          INTEGER NOT NULL,
  kind        TEXT NOT NULL,
  detail      TEXT                       -- JSON
);
CREATE INDEX events_session ON events (session_id, id);
