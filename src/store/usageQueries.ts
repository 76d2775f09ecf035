import type Database from 'better-sqlite3';

/** What a session's agent reported using, summed over its finished turns. */
export interface SessionUsageRow {
  readonly sessionId: string;
  readonly threadId: string;
  /** Credits of every turn that reported some. */
  readonly credits: number;
  /** Turns that reported usage. */
  readonly turnsWithUsage: number;
  /** Context window filled at the session's last turn that reported it, percent; null when none did. */
  readonly lastContextPercent: number | null;
}

/** Sums per session, and per thread over all its sessions. */
export interface UsageSums {
  readonly bySession: ReadonlyMap<string, SessionUsageRow>;
  readonly byThread: ReadonlyMap<string, { credits: number; sessions: number; turnsWithUsage: number }>;
}

// The recorder writes each turn's merged usage once, in its turn_end event (kiro may send two metadata frames
// per turn; counting turn_end only never counts a turn twice).
const SQL = `SELECT s.id AS sessionId, s.thread_id AS threadId,
    COALESCE(SUM(json_extract(e.detail, '$.usage.credits')), 0) AS credits,
    COUNT(json_extract(e.detail, '$.usage')) AS turnsWithUsage,
    (SELECT json_extract(l.detail, '$.usage.contextPercent') FROM events l
      WHERE l.session_id = s.id AND l.kind = 'turn_end'
        AND json_extract(l.detail, '$.usage.contextPercent') IS NOT NULL
      ORDER BY l.id DESC LIMIT 1) AS lastContextPercent
  FROM sessions s LEFT JOIN events e ON e.session_id = s.id AND e.kind = 'turn_end'
  WHERE s.thread_id IN (SELECT value FROM json_each(?))
  GROUP BY s.id`;

/** Usage of every session of the given threads (read-only; one query). */
export function usageOfThreads(db: Database.Database, threadIds: readonly string[]): UsageSums {
  const bySession = new Map<string, SessionUsageRow>();
  const byThread = new Map<string, { credits: number; sessions: number; turnsWithUsage: number }>();
  if (threadIds.length === 0) return { bySession, byThread };
  const rows = db.prepare(SQL).all(JSON.stringify([...new Set(threadIds)])) as SessionUsageRow[];
  for (const r of rows) {
    bySession.set(r.sessionId, r);
    const t = byThread.get(r.threadId) ?? { credits: 0, sessions: 0, turnsWithUsage: 0 };
    t.credits += r.credits;
    t.sessions += 1;
    t.turnsWithUsage += r.turnsWithUsage;
    byThread.set(r.threadId, t);
  }
  return { bySession, byThread };
}
