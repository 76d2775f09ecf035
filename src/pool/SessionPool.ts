import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { LRUCache } from 'lru-cache';
import { type AgentProfile, kiroClassicProfile } from '../agent/AgentProfile.js';
import { AgentSession, type CloseResult } from '../agent/AgentSession.js';
import { buildAgentEnv } from '../agent/agentEnv.js';
import type { Config } from '../config/Config.js';
import type { EndReason } from '../endReasons.js';
import { PoolFullError, ThreadwardenError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { killTree } from '../process/killTree.js';
import { formatMarker, selfIdentity } from '../process/marker.js';
import { ProcessTable } from '../process/ProcessTable.js';
import type { Store } from '../store/Store.js';

/** The settings the pool reads; a subset of Config so tests can build one by hand. */
export type PoolConfig = Pick<
  Config,
  | 'maxSessions'
  | 'sessionIdleTtlMs'
  | 'killGraceMs'
  | 'kiroCliPath'
  | 'kiroArgs'
  | 'trustAllTools'
  | 'workspaceRoot'
  | 'agentEnvPassthrough'
  | 'spawnTimeoutMs'
  | 'turnQuietMs'
>;

export interface SessionPoolOptions {
  readonly config: PoolConfig;
  readonly logger: Logger;
  readonly store?: Store | undefined;
  readonly profile?: AgentProfile;
  readonly table?: ProcessTable;
  /** Identifies this bot instance in markers and rows; default a fresh UUID. */
  readonly instanceId?: string;
  /** Where the agent environment's allowlist reads from; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly now?: () => number;
  /** Hint given to users when every session is busy, ms. Default 30 s. */
  readonly retryAfterMs?: number;
  /** Extra options for each session (terminal size, reply cap); for tests and benchmarks. */
  readonly sessionOptions?: { cols?: number; rows?: number; maxTurnChars?: number };
}

export interface AcquireMeta {
  readonly channelId?: string | undefined;
  readonly userId?: string | undefined;
}

export interface SessionPoolEvents {
  sessionStart: [AgentSession];
  sessionEnd: [AgentSession, CloseResult];
}

const SNOWFLAKE = /^\d{17,20}$/;

/**
 * The live sessions, one per thread, in an LRU cache whose dispose hook starts the tree kill. Busy sessions are
 * never evicted: at capacity the least recently active idle session goes, and when all are busy `acquire` throws
 * PoolFullError. Idle sessions past the TTL are swept by an unref'd timer.
 */
export class SessionPool extends EventEmitter<SessionPoolEvents> {
  readonly instanceId: string;
  readonly table: ProcessTable;
  readonly startedAt: number;
  private readonly cfg: PoolConfig;
  private readonly log: Logger;
  private readonly store: Store | undefined;
  private readonly profile: AgentProfile;
  private readonly env: Readonly<Record<string, string | undefined>>;
  private readonly now: () => number;
  private readonly retryAfterMs: number;
  private readonly owner = selfIdentity();
  private readonly cache: LRUCache<string, AgentSession>;
  /** Reason for the next dispose of a key, set by whoever deletes it. */
  private readonly reasons = new Map<string, EndReason>();
  /** Sessions removed from the cache whose tree kill has not finished; they still count against capacity. */
  private readonly closing = new Set<Promise<CloseResult>>();
  private readonly starting = new Map<string, Promise<AgentSession>>();
  private readonly ended = new Map<EndReason, number>();
  /** Every session not yet closed, live or being torn down. */
  private readonly unclosed = new Set<AgentSession>();
  private readonly sweepTimer: NodeJS.Timeout;
  private draining = false;

  constructor(options: SessionPoolOptions) {
    super();
    this.cfg = options.config;
    this.log = options.logger;
    this.store = options.store;
    this.profile = options.profile ?? kiroClassicProfile;
    this.table = options.table ?? new ProcessTable();
    this.instanceId = options.instanceId ?? randomUUID();
    this.env = options.env ?? process.env;
    this.now = options.now ?? Date.now;
    this.retryAfterMs = options.retryAfterMs ?? 30_000;
    this.startedAt = this.now();
    this.sessionExtras = options.sessionOptions ?? {};
    this.cache = new LRUCache<string, AgentSession>({
      // One more than the limit: capacity is enforced by acquire(), which never lets the cache evict on its own.
      max: this.cfg.maxSessions + 1,
      dispose: (session, threadId, why) => {
        const reason = this.reasons.get(threadId) ?? (why === 'evict' ? 'evicted' : 'shutdown');
        this.reasons.delete(threadId);
        // Never await here and never touch the cache: just start the kill.
        this.track(session.close(reason));
      },
    });
    const every = Math.min(60_000, Math.max(100, Math.floor(this.cfg.sessionIdleTtlMs / 4)));
    this.sweepTimer = setInterval(() => this.sweep(), every);
    this.sweepTimer.unref();
  }

  private readonly sessionExtras: { cols?: number; rows?: number; maxTurnChars?: number };

  get max(): number {
    return this.cfg.maxSessions;
  }

  /** Live sessions (not counting those being torn down). */
  get size(): number {
    return this.cache.size;
  }

  /** Ended sessions by reason since this pool started. */
  endedCounts(): Partial<Record<EndReason, number>> {
    return Object.fromEntries(this.ended);
  }

  /** Live sessions, most recently active first. */
  list(): AgentSession[] {
    return [...this.cache.values()];
  }

  /** The live session of a thread, without counting as activity. */
  get(threadId: string): AgentSession | undefined {
    return this.cache.peek(threadId);
  }

  /**
   * The thread's session, started if it has none. At capacity evicts the least recently active idle session and
   * waits for its tree to be gone; throws PoolFullError when every session is busy.
   */
  async acquire(threadId: string, meta: AcquireMeta = {}): Promise<AgentSession> {
    if (!SNOWFLAKE.test(threadId)) {
      throw new ThreadwardenError(
        'INVALID_THREAD_ID',
        `not a Discord thread id: ${JSON.stringify(threadId)}`,
      );
    }
    if (this.draining) throw new ThreadwardenError('SESSION_CLOSED', 'The bot is shutting down.');
    const live = this.cache.get(threadId);
    if (live) return live;
    const pending = this.starting.get(threadId);
    if (pending) return pending;
    const start = this.makeRoom().then(() => {
      if (this.draining) throw new ThreadwardenError('SESSION_CLOSED', 'The bot is shutting down.');
      return this.spawn(threadId, meta);
    });
    this.starting.set(threadId, start);
    try {
      return await start;
    } finally {
      this.starting.delete(threadId);
    }
  }

  /** Ends a thread's session for a reason (archived, deleted, reset, limits). Resolves when its tree is gone. */
  async close(threadId: string, reason: EndReason): Promise<CloseResult | undefined> {
    const starting = this.starting.get(threadId);
    if (starting) await starting.catch(() => undefined);
    const session = this.cache.peek(threadId);
    if (!session) return undefined;
    this.reasons.set(threadId, reason);
    this.cache.delete(threadId);
    return session.close(reason);
  }

  /** Stops taking work and ends every session in parallel. */
  async closeAll(reason: EndReason): Promise<CloseResult[]> {
    this.draining = true;
    clearInterval(this.sweepTimer);
    await Promise.allSettled([...this.starting.values()]);
    const sessions = [...this.cache.entries()];
    for (const [threadId] of sessions) this.reasons.set(threadId, reason);
    this.cache.clear();
    const results = await Promise.all(sessions.map(([, s]) => s.close(reason)));
    await Promise.allSettled([...this.closing]);
    return results;
  }

  /** Last resort (a second shutdown signal): SIGKILL every tree now, without the grace period. */
  async forceKillAll(): Promise<void> {
    this.draining = true;
    await Promise.all(
      [...this.unclosed].map((s) =>
        s.pid !== undefined && s.pidStartTime !== undefined
          ? killTree(
              { pid: s.pid, startTime: s.pidStartTime, marker: s.marker },
              { graceMs: 0, table: this.table },
            )
          : undefined,
      ),
    );
  }

  /** Closes sessions idle (or stalled on an unanswered permission prompt) for longer than the TTL. */
  sweep(): void {
    const cutoff = this.now() - this.cfg.sessionIdleTtlMs;
    for (const [threadId, s] of this.cache.entries()) {
      const waiting = s.state === 'idle' || (s.state === 'busy' && s.pendingPermission !== undefined);
      if (waiting && s.queued === 0 && s.lastActivityAt <= cutoff) void this.close(threadId, 'idle_ttl');
    }
  }

  private async makeRoom(): Promise<void> {
    for (;;) {
      if (this.cache.size + this.closing.size < this.cfg.maxSessions) return;
      // Least recently active first; only a session at rest may go.
      for (const threadId of this.cache.rkeys()) {
        const s = this.cache.peek(threadId);
        if (s && s.state === 'idle' && s.queued === 0) {
          this.log.info({ threadId }, 'evicting least recently active idle session');
          await this.close(threadId, 'evicted');
          break;
        }
      }
      if (this.cache.size + this.closing.size < this.cfg.maxSessions) return;
      if (this.closing.size > 0) {
        await Promise.race([...this.closing]);
        continue;
      }
      throw new PoolFullError(this.cfg.maxSessions, this.retryAfterMs);
    }
  }

  private spawn(threadId: string, meta: AcquireMeta): AgentSession {
    const sessionId = randomUUID();
    const cwd = resolve(this.cfg.workspaceRoot, threadId);
    const args = [...this.cfg.kiroArgs];
    if (this.cfg.trustAllTools) args.push(...this.profile.trustAllArgs);
    // A workspace that exists held an earlier session of this thread: resume its conversation.
    if (existsSync(cwd) && this.profile.resumeArgs.length > 0) args.push(...this.profile.resumeArgs);
    const marker = formatMarker({
      ownerPid: this.owner.pid,
      ownerStart: this.owner.startTime,
      instanceId: this.instanceId,
      sessionId,
    });
    const session = new AgentSession({
      sessionId,
      threadId,
      channelId: meta.channelId,
      userId: meta.userId,
      instanceId: this.instanceId,
      marker,
      command: this.cfg.kiroCliPath,
      args,
      cwd,
      env: buildAgentEnv(this.env, this.cfg.agentEnvPassthrough, marker),
      profile: this.profile,
      table: this.table,
      logger: this.log,
      store: this.store,
      killGraceMs: this.cfg.killGraceMs,
      spawnTimeoutMs: this.cfg.spawnTimeoutMs,
      turnQuietMs: this.cfg.turnQuietMs,
      now: this.now,
      ...this.sessionExtras,
    });
    session.on('activity', () => {
      // Bump LRU recency; the session updates its own idle clock.
      if (this.cache.peek(threadId) === session) this.cache.get(threadId);
    });
    session.on('turnStart', () => {
      if (this.cache.peek(threadId) === session) this.cache.get(threadId);
    });
    this.unclosed.add(session);
    session.once('closed', (result) => {
      this.unclosed.delete(session);
      this.ended.set(result.reason, (this.ended.get(result.reason) ?? 0) + 1);
      // A session that ended by itself (crash, spawn failure) leaves the cache here; dispose sees it closing.
      if (this.cache.peek(threadId) === session) {
        this.reasons.set(threadId, result.reason);
        this.cache.delete(threadId);
      }
      this.emit('sessionEnd', session, result);
    });
    this.cache.set(threadId, session);
    session.start();
    this.emit('sessionStart', session);
    return session;
  }

  private track(p: Promise<CloseResult>): void {
    this.closing.add(p);
    void p.finally(() => this.closing.delete(p));
  }
}
