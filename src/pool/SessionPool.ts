import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { LRUCache } from 'lru-cache';
import { type AgentProfile, kiroClassicProfile } from '../agent/AgentProfile.js';
import { AgentSession, type CloseResult } from '../agent/AgentSession.js';
import { type AcpResume, AcpTransport } from '../agent/acp/AcpTransport.js';
import { buildAgentEnv } from '../agent/agentEnv.js';
import { ClassicTransport } from '../agent/classic/ClassicTransport.js';
import type { Transport } from '../agent/Transport.js';
import type { Config } from '../config/Config.js';
import type { EndReason } from '../endReasons.js';
import { PoolFullError, SessionClosedError, ThreadwardenError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { formatMarker, selfIdentity } from '../process/marker.js';
import { ProcessTable } from '../process/ProcessTable.js';
import type { AgentSandbox } from '../process/sandbox/AgentSandbox.js';
import type { SandboxStatus } from '../process/sandbox/resolveSandbox.js';
import type { SpawnWrapper } from '../process/spawnAgent.js';

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
> &
  /** Absent: classic (hand-built configs predate ACP); Config always sets them. */
  Partial<Pick<Config, 'agentProtocol' | 'acpLoadTimeoutMs' | 'agentNice'>>;

export interface SessionPoolOptions {
  readonly config: PoolConfig;
  readonly logger: Logger;
  readonly profile?: AgentProfile;
  /** The sandbox's hook on the one spawn path; default none. */
  /** Wraps every agent's spawn: a sandbox (AGENT_SANDBOX) or a plain wrapper. */
  readonly spawnWrapper?: SpawnWrapper | AgentSandbox | undefined;
  /** What agents run under, for /health and /pool-status; default: no sandbox. */
  readonly sandboxStatus?: SandboxStatus | undefined;
  /** ACP: what the thread's earlier session left to resume (read from the store by the app); default none. */
  readonly resumeOf?: (threadId: string, cwd: string) => AcpResume | undefined;
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
  /** A session exists and is about to spawn: subscribe to its events here to see every one of them. */
  sessionCreated: [AgentSession];
  sessionStart: [AgentSession];
  sessionEnd: [AgentSession, CloseResult];
}

const SNOWFLAKE = /^\d{17,20}$/;

/** An acquire between its reservation and its spawn; `cancelled` is set when the thread is closed meanwhile. */
interface PendingStart {
  promise: Promise<AgentSession>;
  cancelled: EndReason | undefined;
}

/**
 * The live sessions, one per thread, in an LRU cache whose dispose hook starts the tree kill. Busy sessions are
 * never evicted: at capacity the least recently active idle session goes, and when all are busy `acquire` throws
 * PoolFullError. Idle sessions past the TTL are swept by an unref'd timer.
 */
export class SessionPool extends EventEmitter<SessionPoolEvents> {
  readonly instanceId: string;
  readonly table: ProcessTable;
  readonly startedAt: number;
  /** The isolation every agent of this pool runs under (AGENT_SANDBOX, after the start-up probe). */
  readonly sandbox: SandboxStatus;
  private readonly cfg: PoolConfig;
  private readonly log: Logger;
  private readonly spawnWrapper: SpawnWrapper | AgentSandbox | undefined;
  private readonly resumeOf: ((threadId: string, cwd: string) => AcpResume | undefined) | undefined;
  private readonly profile: AgentProfile;
  private readonly env: Readonly<Record<string, string | undefined>>;
  private readonly now: () => number;
  private readonly retryAfterMs: number;
  private readonly owner = selfIdentity();
  private readonly cache: LRUCache<string, AgentSession>;
  /** Reason for the next dispose of a key, set by whoever deletes it. */
  private readonly reasons = new Map<string, EndReason>();
  /** Sessions removed from the cache whose tree kill has not finished; they still count against capacity. */
  private readonly closing = new Map<AgentSession, Promise<CloseResult>>();
  private readonly starting = new Map<string, PendingStart>();
  private readonly ended = new Map<EndReason, number>();
  /** Every session not yet closed, live or being torn down: each holds one slot until its tree is gone. */
  private readonly unclosed = new Set<AgentSession>();
  /** Closing sessions whose slot already belongs to a reservation (an eviction made room for someone). */
  private readonly handedOver = new Set<AgentSession>();
  /** Sessions being removed from the cache right now, so their 'closing' listener does not re-enter it. */
  private readonly leaving = new WeakSet<AgentSession>();
  /** Acquires that hold a slot and have not spawned yet. */
  private reserved = 0;
  private readonly sweepTimer: NodeJS.Timeout;
  private draining = false;

  constructor(options: SessionPoolOptions) {
    super();
    this.cfg = options.config;
    this.log = options.logger;
    this.spawnWrapper = options.spawnWrapper;
    this.sandbox = options.sandboxStatus ?? { mode: 'off', mechanism: 'off' };
    this.resumeOf = options.resumeOf;
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
        if (why === 'evict')
          this.log.error({ threadId }, 'the cache evicted a session on its own (capacity bug)');
        // Never await here and never touch the cache: just start the kill. (close() emits 'closing', and the
        // listener in spawn() must not delete the key again from inside this hook: `leaving` tells it.)
        this.leaving.add(session);
        this.track(session, session.close(reason));
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
   * The thread's session, started if it has none. Capacity is one synchronous decision taken before anything is
   * awaited: a free slot is reserved, or the slot of a session being torn down (the thread's own previous one
   * first), or the least recently active idle session is evicted and its slot reserved; otherwise PoolFullError.
   * The new agent starts only once the slot is free and the thread's previous tree is gone.
   */
  async acquire(threadId: string, meta: AcquireMeta = {}): Promise<AgentSession> {
    if (!SNOWFLAKE.test(threadId)) {
      throw new ThreadwardenError(
        'INVALID_THREAD_ID',
        `not a Discord thread id: ${JSON.stringify(threadId)}`,
      );
    }
    if (this.draining) throw new ThreadwardenError('SESSION_CLOSED', 'The bot is shutting down.');
    // The cache holds only sessions that are not closing (see spawn), so a dying session is never handed out.
    const live = this.cache.get(threadId);
    if (live) return live;
    const pending = this.starting.get(threadId);
    if (pending) return pending.promise;
    const slot = this.reserve(threadId);
    const entry: PendingStart = { cancelled: undefined, promise: Promise.resolve(undefined as never) };
    entry.promise = (async () => {
      try {
        await slot;
        await this.previousGone(threadId);
        if (this.draining) throw new ThreadwardenError('SESSION_CLOSED', 'The bot is shutting down.');
        if (entry.cancelled) throw new SessionClosedError(entry.cancelled);
        // spawn() adds the session to `unclosed` in this same synchronous step as the reservation is released.
        return this.spawn(threadId, meta);
      } finally {
        this.reserved--;
      }
    })();
    this.starting.set(threadId, entry);
    try {
      return await entry.promise;
    } finally {
      if (this.starting.get(threadId) === entry) this.starting.delete(threadId);
    }
  }

  /**
   * Ends a thread's session for a reason (archived, deleted, reset, limits). Resolves when its tree is gone. A start
   * still waiting for its slot is cancelled: no agent is spawned for it and its acquire rejects.
   */
  async close(threadId: string, reason: EndReason): Promise<CloseResult | undefined> {
    const starting = this.starting.get(threadId);
    if (starting) {
      starting.cancelled ??= reason;
      await starting.promise.catch(() => undefined);
    }
    const session = this.cache.peek(threadId);
    if (!session) {
      // Already on its way out (closing by itself, or evicted): wait for the same teardown.
      const dying = [...this.closing].find(([s]) => s.threadId === threadId);
      return dying?.[1];
    }
    return this.end(threadId, session, reason);
  }

  /** Stops taking work and ends every session in parallel. */
  async closeAll(reason: EndReason): Promise<CloseResult[]> {
    this.draining = true;
    clearInterval(this.sweepTimer);
    await Promise.allSettled([...this.starting.values()].map((p) => p.promise));
    const sessions = [...this.cache.entries()];
    for (const [threadId] of sessions) this.reasons.set(threadId, reason);
    this.cache.clear();
    const results = await Promise.all(sessions.map(([, s]) => s.close(reason)));
    await Promise.allSettled([...this.closing.values()]);
    return results;
  }

  /** Last resort (a second shutdown signal): SIGKILL every tree now, without the grace period. */
  async forceKillAll(): Promise<void> {
    this.draining = true;
    await Promise.all([...this.unclosed].map((s) => s.forceKill()));
  }

  /** Closes sessions idle (or stalled on an unanswered permission prompt) for longer than the TTL. */
  sweep(): void {
    const cutoff = this.now() - this.cfg.sessionIdleTtlMs;
    for (const [threadId, s] of this.cache.entries()) {
      const waiting = s.state === 'idle' || (s.state === 'busy' && s.pendingPermission !== undefined);
      if (waiting && s.queued === 0 && s.lastActivityAt <= cutoff) void this.close(threadId, 'idle_ttl');
    }
  }

  /** Slots in use: every session whose tree is not gone, plus reservations, minus slots already passed on. */
  private occupied(): number {
    return this.unclosed.size - this.handedOver.size + this.reserved;
  }

  /**
   * Takes a slot for a new session of `threadId`, synchronously (nothing is awaited between the check and the
   * claim, so concurrent acquires cannot all see the same free slot). Resolves when the slot is free.
   */
  private reserve(threadId: string): Promise<unknown> {
    if (this.occupied() < this.cfg.maxSessions) {
      this.reserved++;
      return Promise.resolve();
    }
    const dying = [...this.closing.keys()].filter((s) => !this.handedOver.has(s));
    const taken = dying.find((s) => s.threadId === threadId) ?? dying[0];
    if (taken) return this.handOver(taken);
    // Least recently active first; only a session at rest may go.
    for (const id of this.cache.rkeys()) {
      const s = this.cache.peek(id);
      if (s && s.state === 'idle' && s.queued === 0) {
        this.log.info({ threadId: id }, 'evicting least recently active idle session');
        this.end(id, s, 'evicted');
        return this.handOver(s);
      }
    }
    throw new PoolFullError(this.cfg.maxSessions, this.retryAfterMs);
  }

  /** Passes a closing session's slot to a reservation; resolves when its tree is gone. */
  private handOver(s: AgentSession): Promise<unknown> {
    this.handedOver.add(s);
    this.reserved++;
    return (this.closing.get(s) ?? Promise.resolve()).catch(() => undefined);
  }

  /** Resolves once no earlier session of the thread has a process left (two agents in one workspace clash). */
  private async previousGone(threadId: string): Promise<void> {
    const earlier = [...this.closing].filter(([s]) => s.threadId === threadId).map(([, p]) => p);
    await Promise.allSettled(earlier);
  }

  /** Removes a live session from the cache now (dispose starts its kill); returns its close promise. */
  private end(threadId: string, session: AgentSession, reason: EndReason): Promise<CloseResult> {
    this.leaving.add(session);
    this.reasons.set(threadId, reason);
    this.cache.delete(threadId);
    return session.close(reason);
  }

  private spawn(threadId: string, meta: AcquireMeta): AgentSession {
    const sessionId = randomUUID();
    const cwd = resolve(this.cfg.workspaceRoot, threadId);
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
      args: this.cfg.kiroArgs,
      cwd,
      env: buildAgentEnv(this.env, this.cfg.agentEnvPassthrough, marker),
      transport: this.transport(threadId, cwd),
      table: this.table,
      logger: this.log,
      killGraceMs: this.cfg.killGraceMs,
      spawnTimeoutMs: this.cfg.spawnTimeoutMs,
      agentNice: this.cfg.agentNice,
      spawnWrapper: this.spawnWrapper,
      now: this.now,
    });
    session.on('activity', () => {
      // Bump LRU recency; the session updates its own idle clock.
      if (this.cache.peek(threadId) === session) this.cache.get(threadId);
    });
    session.on('turnStart', () => {
      if (this.cache.peek(threadId) === session) this.cache.get(threadId);
    });
    // A session that starts closing by itself (crash, spawn failure) leaves the cache at once, so it is never
    // handed out again; its tree keeps its slot until the kill is done (dispose tracks it).
    session.on('state', (state) => {
      if (state !== 'closing' && state !== 'closed') return;
      if (!this.leaving.has(session) && this.cache.peek(threadId) === session) {
        this.end(threadId, session, session.closeReason ?? 'crashed');
      }
    });
    this.unclosed.add(session);
    session.once('closed', (result) => {
      this.unclosed.delete(session);
      this.handedOver.delete(session);
      this.ended.set(result.reason, (this.ended.get(result.reason) ?? 0) + 1);
      this.emit('sessionEnd', session, result);
    });
    // The reservation guarantees room; the cache (max + 1) must never evict by itself.
    if (this.cache.size >= this.cfg.maxSessions) {
      throw new ThreadwardenError(
        'POOL_FULL',
        `capacity bookkeeping broken: ${this.cache.size} live sessions`,
      );
    }
    this.cache.set(threadId, session);
    this.emit('sessionCreated', session);
    session.start();
    this.emit('sessionStart', session);
    return session;
  }

  /** The conversation of a new session, for the configured protocol. */
  private transport(threadId: string, cwd: string): Transport {
    if (this.cfg.agentProtocol === 'acp') {
      return new AcpTransport({
        cwd,
        trustAllTools: this.cfg.trustAllTools,
        resume: this.resumeOf?.(threadId, cwd),
        loadTimeoutMs: this.cfg.acpLoadTimeoutMs ?? 15_000,
        ...(this.sessionExtras.maxTurnChars !== undefined && {
          maxTurnChars: this.sessionExtras.maxTurnChars,
        }),
      });
    }
    return new ClassicTransport({
      profile: this.profile,
      turnQuietMs: this.cfg.turnQuietMs,
      trustAllTools: this.cfg.trustAllTools,
      // A workspace that exists held an earlier session of this thread: resume its conversation.
      resume: existsSync(cwd),
      ...this.sessionExtras,
    });
  }

  private track(session: AgentSession, p: Promise<CloseResult>): void {
    this.closing.set(session, p);
    void p.finally(() => {
      if (this.closing.get(session) === p) this.closing.delete(session);
    });
  }
}
