-- One row rewritten by every health check: proves the database takes writes right now.
CREATE TABLE health_probe (
  id  INTEGER PRIMARY KEY CHECK (id = 1),
  at  INTEGER NOT NULL
);
