-- Retention: prune() deletes by age; these keep it from scanning whole tables.
CREATE INDEX events_at ON events (at);
CREATE INDEX sessions_ended ON sessions (ended_at) WHERE ended_at IS NOT NULL;
