import type Database from 'better-sqlite3';

/** What the store remembers of a thread's agent conversation. */
export interface ThreadAgentRow {
  readonly threadId: string;
  readonly agentSessionId: string | null;
  readonly cwd: string;
  readonly modelId: string | null;
  readonly modeId: string | null;
  readonly updatedAt: number;
}

/** Prepared statements for thread_agent (migration 005). */
export function threadAgentStatements(db: Database.Database) {
  return {
    get: db.prepare(`SELECT thread_id AS threadId, agent_session_id AS agentSessionId, cwd, model_id AS modelId,
      mode_id AS modeId, updated_at AS updatedAt FROM thread_agent WHERE thread_id = ?`),
    setSession: db.prepare(`INSERT INTO thread_agent (thread_id, agent_session_id, cwd, updated_at)
      VALUES (@threadId, @agentSessionId, @cwd, @at)
      ON CONFLICT (thread_id) DO UPDATE SET agent_session_id = excluded.agent_session_id, cwd = excluded.cwd,
      updated_at = excluded.updated_at`),
    setChoice: db.prepare(`INSERT INTO thread_agent (thread_id, cwd, model_id, mode_id, updated_at)
      VALUES (@threadId, @cwd, @modelId, @modeId, @at)
      ON CONFLICT (thread_id) DO UPDATE SET model_id = COALESCE(excluded.model_id, model_id),
      mode_id = COALESCE(excluded.mode_id, mode_id), updated_at = excluded.updated_at`),
    sessionAgent: db.prepare('UPDATE sessions SET agent_session_id = ?, protocol = ? WHERE id = ?'),
  };
}
