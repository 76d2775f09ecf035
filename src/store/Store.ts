import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import Database from 'better-sqlite3';
import type { EndReason } from '../endReasons.js';
import type { Logger } from '../log/logger.js';
import { packageRoot } from '../paths.js';
import { migrate } from './migrate.js';
import { type ThreadAgentRow, threadAgentStatements } from './threadAgent.js';
import { type UsageSums, usageOfThreads } from './usageQueries.js';

export interface NewSession {
  readonly id: string;
  readonly threadId: string;
  readonly channelId: string | undefined;
  readonly userId: string | undefined;
  readonly instanceId: string;
  readonly marker: string;
  readonly cwd: string;
  readonly command: readonly string[];
  readonly startedAt: number;
}

export interface SessionEnd {
  readonly reason: EndReason;
  readonly endedAt: number;
  readonly exitCode: number | undefined;
  readonly exitSignal: number | undefined;
  readonly killSignal: string;
  readonly forced: boolean;
  readonly pidsKilled: readonly number[];
  readonly teardownMs: number;
  readonly lastOutput: string | undefined;
}

/** A session as stored, for history, status and the reaper. */
export interface SessionRow {
  readonly id: string;
  readonly threadId: string;
  readonly channelId: string | null;
  readonly userId: string | null;
  readonly instanceId: string;
  readonly pid: number | null;
  readonly pidStart: number | null;
  readonly marker: string;
  readonly cwd: string;
  readonly command: string;
  readonly startedAt: number;
  readonly readyAt: number | null;
  readonly endedAt: number | null;
  readonly endReason: EndReason | null;
  readonly exitCode: number | null;
  readonly exitSignal: number | null;
  readonly killSignal: string | null;
  readonly forced: number | null;
  readonly pidsKilled: string | null;
  readonly teardownMs: number | null;
  readonly peakCpu: number | null;
  readonly peakMemMb: number | null;
  readonly turns: number;
  readonly lastOutput: string | null;
  /** 'bwrap' or 'off': what the agent ran under (null before it spawned). */
  readonly isolation: string | null;
}

export interface HistoryQuery {
  readonly threadId?: string;
  readonly reason?: EndReason;
  /** Only sessions started at or after this time (ms since epoch). */
  readonly since?: number;
  readonly limit?: number;
}

export interface StoreOptions {
  readonly logger: Logger;
  readonly migrationsDir?: string;
  readonly readonly?: boolean;
  /**
   * Ended sessions (and their events), and events of any session, older than this are deleted: once at open and
   * then every hour. Default 90 days (HISTORY_RETENTION_DAYS). Ignored read-only.
   */
  readonly retentionMs?: number;
  readonly now?: () => number;
}

/** What the store could not write: rows dropped when the queue overflowed, and rows that could never succeed. */
export interface WriteLosses {
  readonly dropped: number;
  readonly rejected: number;
}

const COLUMNS = `id, thread_id AS threadId, channel_id AS channelId, user_id AS userId, instance_id AS instanceId,
  pid, pid_start AS pidStart, marker, cwd, command, started_at AS startedAt, ready_at AS readyAt, ended_at AS endedAt,
  end_reason AS endReason, exit_code AS exitCode, exit_signal AS exitSignal, kill_signal AS killSignal, forced,
  pids_killed AS pidsKilled, teardown_ms AS teardownMs, peak_cpu AS peakCpu, peak_mem_mb AS peakMemMb, turns,
  last_output AS lastOutput, isolation`;

/** Failed writes kept for replay while the disk is full or read-only; beyond this the oldest events are dropped. */
const MAX_PENDING_WRITES = 10_000;
/** last_output is the agent's last lines for `history`; the tail of this many characters is kept. */
export const MAX_LAST_OUTPUT_CHARS = 4000;
const DAY_MS = 86_400_000;
const PRUNE_EVERY_MS = 3_600_000;
/** Rows deleted per statement while pruning, so one prune never holds the write lock for long. */
const PRUNE_BATCH = 5000;

/**
 * A write that can never succeed, whenever it is retried (a foreign key to a dropped row, a CHECK, a bad value):
 * skipped and reported. Anything else (read-only file, full disk, I/O, busy) is a fault of the moment: retried.
 */
function neverSucceeds(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string')
    return code.startsWith('SQLITE_CONSTRAINT') || code === 'SQLITE_MISMATCH' || code === 'SQLITE_TOOBIG';
  return err instanceof RangeError || err instanceof TypeError;
}

interface PendingWrite {
  /** Events may be dropped on overflow; session rows are kept as long as possible (events depend on them). */
  readonly kind: 'row' | 'event';
  readonly run: () => void;
}

/**
 * The SQLite history of sessions. Writes never throw into the bot and never run in the caller's stack: they are
 * queued and committed together in one transaction on the next turn of the event loop (one fsync for everything
 * a burst of pty or ACP traffic recorded). A write failing for a fault of the moment (read-only file, full disk) is
 * kept and replayed in order once writes work again, and `health()` reports the fault meanwhile; a write that can
 * never succeed is skipped and counted, so it never stalls the ones behind it. Reads see every queued write.
 */
export class Store {
  readonly path: string;
  private readonly db: Database.Database;
  private readonly logger: Logger;
  private readonly pending: PendingWrite[] = [];
  private lastError: Error | undefined;
  private closed = false;
  private flushScheduled: NodeJS.Immediate | undefined;
  private readonly pruneTimer: NodeJS.Timeout | undefined;
  private readonly retentionMs: number;
  private readonly now: () => number;
  private losses = { dropped: 0, rejected: 0 };
  /** Transactions committed by flush(), for tests and metrics. */
  commits = 0;
  private readonly stmts;

  constructor(path: string, options: StoreOptions) {
    this.path = path;
    this.logger = options.logger;
    if (path !== ':memory:' && !options.readonly) mkdirSync(dirname(path), { recursive: true });
    this.db = new Database(path, options.readonly ? { readonly: true, fileMustExist: true } : {});
    if (!options.readonly) {
      this.db.pragma('journal_mode = WAL');
      // FULL: a committed row survives a crash of the bot and of the host.
      this.db.pragma('synchronous = FULL');
      this.db.pragma('foreign_keys = ON');
      this.db.pragma('busy_timeout = 5000');
      migrate(this.db, options.migrationsDir ?? join(packageRoot(), 'migrations'));
    }
    const db = this.db;
    this.stmts = options.readonly
      ? undefined
      : {
          insert:
            db.prepare(`INSERT INTO sessions (id, thread_id, channel_id, user_id, instance_id, marker, cwd, command,
            started_at) VALUES (@id, @threadId, @channelId, @userId, @instanceId, @marker, @cwd, @command, @startedAt)`),
          spawned: db.prepare('UPDATE sessions SET pid = ?, pid_start = ?, isolation = ? WHERE id = ?'),
          ready: db.prepare('UPDATE sessions SET ready_at = ? WHERE id = ?'),
          turn: db.prepare('UPDATE sessions SET turns = turns + 1 WHERE id = ?'),
          peaks: db.prepare(`UPDATE sessions SET peak_cpu = MAX(COALESCE(peak_cpu, 0), ?),
            peak_mem_mb = MAX(COALESCE(peak_mem_mb, 0), ?) WHERE id = ?`),
          end: db.prepare(`UPDATE sessions SET ended_at = @endedAt, end_reason = @reason, exit_code = @exitCode,
            exit_signal = @exitSignal, kill_signal = @killSignal, forced = @forced, pids_killed = @pidsKilled,
            teardown_ms = @teardownMs, last_output = @lastOutput WHERE id = @id AND ended_at IS NULL`),
          event: db.prepare('INSERT INTO events (session_id, at, kind, detail) VALUES (?, ?, ?, ?)'),
          probe: db.prepare('INSERT OR REPLACE INTO health_probe (id, at) VALUES (1, ?)'),
          ...threadAgentStatements(db),
        };
    this.retentionMs = options.retentionMs ?? 90 * DAY_MS;
    this.now = options.now ?? Date.now;
    if (!options.readonly) {
      this.prune();
      this.pruneTimer = setInterval(() => this.prune(), PRUNE_EVERY_MS);
      this.pruneTimer.unref();
    }
  }

  /** Queues a write; the queue is committed on the next turn of the event loop (see flush). */
  private write(fn: () => void, kind: PendingWrite['kind'] = 'row'): void {
    if (this.closed) return;
    this.pending.push({ kind, run: fn });
    if (this.pending.length > MAX_PENDING_WRITES) {
      const oldestEvent = this.pending.findIndex((w) => w.kind === 'event');
      this.pending.splice(Math.max(oldestEvent, 0), 1);
      if (this.losses.dropped++ === 0)
        this.logger.error(
          { max: MAX_PENDING_WRITES },
          'database write queue full: dropping the oldest writes',
        );
    }
    if (!this.flushScheduled) {
      this.flushScheduled = setImmediate(() => {
        this.flushScheduled = undefined;
        this.flush();
      });
      this.flushScheduled.unref();
    }
  }

  /**
   * Commits every queued write in one transaction, in order. A write that can never succeed is rolled back alone
   * (a savepoint), counted and skipped; any other failure rolls the batch back and keeps it for the next try.
   * Returns true when none remain.
   */
  flush(): boolean {
    if (this.pending.length === 0 || this.closed) return this.pending.length === 0;
    const batch = this.pending.length;
    const rejected: { err: unknown }[] = [];
    try {
      this.db.transaction(() => {
        for (let i = 0; i < batch; i++) {
          try {
            // Nested: a savepoint, so a rejected write leaves the others of the batch intact.
            this.db.transaction(this.pending[i]!.run)();
          } catch (err) {
            if (!neverSucceeds(err)) throw err;
            rejected.push({ err });
          }
        }
      })();
    } catch (err) {
      if (!this.lastError)
        this.logger.error({ err, pending: this.pending.length }, 'database write failed; will retry');
      this.lastError = err as Error;
      return false;
    }
    this.commits++;
    this.pending.splice(0, batch);
    if (rejected.length > 0) {
      this.losses.rejected += rejected.length;
      this.logger.error(
        { err: rejected[0]!.err, skipped: rejected.length, total: this.losses.rejected },
        'skipped database writes that can never succeed',
      );
    }
    if (this.lastError) this.logger.info('database writes work again');
    this.lastError = undefined;
    return this.pending.length === 0;
  }

  /** Writes lost so far: dropped from a full queue, or rejected by the database for good. */
  get writeLosses(): WriteLosses {
    return { ...this.losses };
  }

  /**
   * Deletes ended sessions older than the retention age with their events, and older events of any session.
   * Returns how many rows went. A failure (read-only file) is logged and retried at the next prune.
   */
  prune(): { sessions: number; events: number } {
    if (this.closed || !this.stmts) return { sessions: 0, events: 0 };
    const cutoff = this.now() - this.retentionMs;
    let sessions = 0;
    let events = 0;
    try {
      this.flush();
      const oldEvents = this.db.prepare(
        `DELETE FROM events WHERE id IN (SELECT id FROM events WHERE at < ? OR session_id IN
          (SELECT id FROM sessions WHERE ended_at < ?) LIMIT ${PRUNE_BATCH})`,
      );
      const oldSessions = this.db.prepare(
        `DELETE FROM sessions WHERE rowid IN (SELECT rowid FROM sessions WHERE ended_at < ? AND NOT EXISTS
          (SELECT 1 FROM events WHERE events.session_id = sessions.id) LIMIT ${PRUNE_BATCH})`,
      );
      for (let n = PRUNE_BATCH; n === PRUNE_BATCH; events += n) n = oldEvents.run(cutoff, cutoff).changes;
      for (let n = PRUNE_BATCH; n === PRUNE_BATCH; sessions += n) n = oldSessions.run(cutoff).changes;
    } catch (err) {
      this.logger.warn({ err }, 'could not prune old history; will retry');
    }
    if (sessions > 0 || events > 0)
      this.logger.info({ sessions, events, olderThanDays: this.retentionMs / DAY_MS }, 'pruned old history');
    return { sessions, events };
  }

  private get s() {
    if (!this.stmts) throw new Error('this Store was opened read-only');
    return this.stmts;
  }

  insertSession(row: NewSession): void {
    const s = this.s;
    this.write(() =>
      s.insert.run({
        ...row,
        channelId: row.channelId ?? null,
        userId: row.userId ?? null,
        command: JSON.stringify(row.command),
      }),
    );
  }

  /** Records the agent's pid and the spawn event in one transaction (one fsync on the spawn path). */
  markSpawned(
    id: string,
    pid: number,
    pidStart: number,
    detail?: unknown,
    at = Date.now(),
    isolation: string | null = null,
  ): void {
    const s = this.s;
    const json = detail === undefined ? null : JSON.stringify(detail);
    this.write(() =>
      this.db.transaction(() => {
        s.spawned.run(pid, pidStart, isolation, id);
        s.event.run(id, at, 'spawn', json);
      })(),
    );
  }

  /** Records the first prompt and the ready event in one transaction. */
  markReady(id: string, at: number, detail?: unknown): void {
    const s = this.s;
    const json = detail === undefined ? null : JSON.stringify(detail);
    this.write(() =>
      this.db.transaction(() => {
        s.ready.run(at, id);
        s.event.run(id, at, 'ready', json);
      })(),
    );
  }

  countTurn(id: string): void {
    const s = this.s;
    this.write(() => s.turn.run(id));
  }

  recordPeaks(id: string, cpuPercent: number, memMb: number): void {
    const s = this.s;
    this.write(() => s.peaks.run(cpuPercent, memMb, id));
  }

  recordEvent(sessionId: string, kind: string, detail?: unknown, at = Date.now()): void {
    const s = this.s;
    const json = detail === undefined ? null : JSON.stringify(detail);
    this.write(() => s.event.run(sessionId, at, kind, json), 'event');
  }

  endSession(id: string, end: SessionEnd): void {
    const s = this.s;
    this.write(() =>
      s.end.run({
        id,
        reason: end.reason,
        endedAt: end.endedAt,
        exitCode: end.exitCode ?? null,
        exitSignal: end.exitSignal ?? null,
        killSignal: end.killSignal,
        forced: end.forced ? 1 : 0,
        pidsKilled: JSON.stringify(end.pidsKilled),
        teardownMs: end.teardownMs,
        lastOutput: end.lastOutput === undefined ? null : end.lastOutput.slice(-MAX_LAST_OUTPUT_CHARS),
      }),
    );
  }

  /** Sessions with no end recorded, oldest first. */
  openSessions(): SessionRow[] {
    this.flush(); // reads see every queued write
    return this.db
      .prepare(`SELECT ${COLUMNS} FROM sessions WHERE ended_at IS NULL ORDER BY started_at`)
      .all() as SessionRow[];
  }

  history(query: HistoryQuery = {}): SessionRow[] {
    this.flush(); // reads see every queued write
    const where: string[] = [];
    const params: Record<string, unknown> = {};
    if (query.threadId !== undefined) {
      where.push('thread_id = @threadId');
      params.threadId = query.threadId;
    }
    if (query.reason !== undefined) {
      where.push('end_reason = @reason');
      params.reason = query.reason;
    }
    if (query.since !== undefined) {
      where.push('started_at >= @since');
      params.since = query.since;
    }
    params.limit = query.limit ?? 100;
    const sql = `SELECT ${COLUMNS} FROM sessions ${where.length ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY started_at DESC, rowid DESC LIMIT @limit`;
    return this.db.prepare(sql).all(params) as SessionRow[];
  }

  /** Remembers the thread's ACP session id (and cwd) for the next session's session/load; also on the session row. */
  recordAgentSession(
    sessionId: string,
    threadId: string,
    agentSessionId: string,
    cwd: string,
    protocol: string,
  ): void {
    const s = this.s;
    const at = Date.now();
    this.write(() =>
      this.db.transaction(() => {
        s.setSession.run({ threadId, agentSessionId, cwd, at });
        s.sessionAgent.run(agentSessionId, protocol, sessionId);
      })(),
    );
  }

  /** Remembers the model or mode a thread's users chose (undefined leaves the other as it was). */
  recordThreadChoice(threadId: string, cwd: string, choice: { modelId?: string; modeId?: string }): void {
    const s = this.s;
    const at = Date.now();
    this.write(() =>
      s.setChoice.run({ threadId, cwd, modelId: choice.modelId ?? null, modeId: choice.modeId ?? null, at }),
    );
  }

  /** What the thread's next session needs to continue (undefined for a thread never seen). */
  threadAgent(threadId: string): ThreadAgentRow | undefined {
    return this.s.get.get(threadId) as ThreadAgentRow | undefined;
  }

  usageOfThreads(threadIds: readonly string[]): UsageSums {
    this.flush(); // reads see every queued write
    return usageOfThreads(this.db, threadIds);
  }

  events(sessionId: string): { at: number; kind: string; detail: unknown }[] {
    this.flush(); // reads see every queued write
    return (
      this.db
        .prepare('SELECT at, kind, detail FROM events WHERE session_id = ? ORDER BY id')
        .all(sessionId) as {
        at: number;
        kind: string;
        detail: string | null;
      }[]
    ).map((e) => ({ ...e, detail: e.detail === null ? null : JSON.parse(e.detail) }));
  }

  /** Ended sessions counted by reason, optionally only those ended at or after `since`. */
  countsByReason(since = 0): Partial<Record<EndReason, number>> {
    this.flush(); // reads see every queued write
    const rows = this.db
      .prepare(
        'SELECT end_reason AS reason, COUNT(*) AS n FROM sessions WHERE ended_at IS NOT NULL AND ended_at >= ? GROUP BY end_reason',
      )
      .all(since) as { reason: EndReason; n: number }[];
    return Object.fromEntries(rows.map((r) => [r.reason, r.n]));
  }

  /** Whether the database takes writes now: replays pending writes, then writes the one-row health probe. */
  health(): { ok: true } | { ok: false; error: string } {
    if (this.closed) return { ok: false, error: 'database is closed' };
    if (!this.flush())
      return { ok: false, error: `database not writable: ${this.lastError?.message ?? 'unknown'}` };
    try {
      this.s.probe.run(Date.now());
      return { ok: true };
    } catch (err) {
      return { ok: false, error: `database not writable: ${(err as Error).message}` };
    }
  }

  get pendingWrites(): number {
    return this.pending.length;
  }

  close(): void {
    if (this.closed) return;
    clearImmediate(this.flushScheduled);
    clearInterval(this.pruneTimer);
    this.flush();
    this.closed = true;
    this.db.close();
  }
}
