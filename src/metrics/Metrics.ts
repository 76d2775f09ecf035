import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { AgentSession, SessionState } from '../agent/AgentSession.js';
import { END_REASONS } from '../endReasons.js';
import type { SessionUsage } from '../monitor/ResourceMonitor.js';
import type { SessionPool } from '../pool/SessionPool.js';

const STATES: readonly SessionState[] = ['starting', 'idle', 'busy', 'closing'];

/**
 * The bot's Prometheus metrics in their own registry (never the global one, so tests can run many). Labels carry
 * thread ids and end reasons only: no tokens, no message content.
 */
export class Metrics {
  readonly registry = new Registry();
  private readonly ended: Counter<'reason'>;
  private readonly spawn: Histogram;
  private readonly turn: Histogram;
  private readonly teardown: Histogram;
  private readonly reaped: Counter;
  private readonly rateLimited: Counter<'route'>;
  private readonly credits: Counter;
  /** Context window filled at the last turn, percent, per live session's thread. */
  private readonly contextPercent = new Map<string, number>();

  constructor(pool: SessionPool, usage: (threadId: string) => SessionUsage | undefined) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'threadwarden_process_' });
    new Gauge({
      name: 'threadwarden_sessions',
      help: 'Live agent sessions by state',
      labelNames: ['state'],
      registers,
      collect() {
        this.reset();
        const counts = new Map<string, number>(STATES.map((s) => [s, 0]));
        for (const s of pool.list()) counts.set(s.state, (counts.get(s.state) ?? 0) + 1);
        for (const [state, n] of counts) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'threadwarden_sessions_max',
      help: 'MAX_SESSIONS',
      registers,
      collect() {
        this.set(pool.max);
      },
    });
    // Per-session figures from the monitor's last tick, one label per live thread.
    const perSession = (name: string, help: string, value: (u: SessionUsage) => number) =>
      new Gauge({
        name,
        help,
        labelNames: ['thread_id'],
        registers,
        collect() {
          this.reset();
          for (const s of pool.list()) {
            const u = usage(s.threadId);
            if (u) this.set({ thread_id: s.threadId }, value(u));
          }
        },
      });
    perSession(
      'threadwarden_session_cpu_percent',
      'CPU of a session process tree at the last monitor tick, percent of one core',
      (u) => u.cpu,
    );
    perSession(
      'threadwarden_session_memory_bytes',
      'Resident memory of a session process tree at the last monitor tick',
      (u) => Math.round(u.memMb * 1024 * 1024),
    );
    this.ended = new Counter({
      name: 'threadwarden_sessions_ended_total',
      help: 'Sessions ended, by end reason',
      labelNames: ['reason'],
      registers,
    });
    for (const reason of END_REASONS) this.ended.inc({ reason }, 0);
    this.spawn = new Histogram({
      name: 'threadwarden_spawn_seconds',
      help: 'Time from spawning the agent to its first prompt',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
      registers,
    });
    this.turn = new Histogram({
      name: 'threadwarden_turn_seconds',
      help: 'Time from sending a message to the agent to the end of its turn',
      buckets: [0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 900],
      registers,
    });
    this.teardown = new Histogram({
      name: 'threadwarden_teardown_seconds',
      help: 'Time from close() to the last process of the tree gone',
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 5],
      registers,
    });
    this.reaped = new Counter({
      name: 'threadwarden_processes_reaped_total',
      help: 'Processes killed by tree kills and the orphan reaper',
      registers,
    });
    this.rateLimited = new Counter({
      name: 'threadwarden_discord_rate_limited_total',
      help: 'Discord REST responses with status 429',
      labelNames: ['route'],
      registers,
    });
    this.credits = new Counter({
      name: 'threadwarden_credits_total',
      help: 'Credits the agents reported using (kiro _kiro.dev/metadata), all sessions since start',
      registers,
    });
    const context = this.contextPercent;
    new Gauge({
      name: 'threadwarden_session_context_percent',
      help: "A session's context window filled at its last turn, percent (as the agent reported it)",
      labelNames: ['thread_id'],
      registers,
      collect() {
        this.reset();
        const live = new Set(pool.list().map((s) => s.threadId));
        for (const [threadId, pct] of context) if (live.has(threadId)) this.set({ thread_id: threadId }, pct);
      },
    });
    pool.on('sessionStart', (s) => this.watch(s));
    pool.on('sessionEnd', (_s, result) => {
      this.ended.inc({ reason: result.reason });
      this.contextPercent.delete(_s.threadId);
      if (result.kill.signal !== 'none') this.teardown.observe(result.kill.durationMs / 1000);
      this.reaped.inc(result.kill.pids.length);
    });
  }

  private watch(s: AgentSession): void {
    s.ready.then(
      () => this.spawn.observe((Date.now() - s.startedAt) / 1000),
      () => {},
    );
    s.on('turnEnd', (r) => {
      this.turn.observe(r.durationMs / 1000);
      // The turn's merged usage: kiro may report it in two metadata frames, counted once here.
      if (r.usage) this.recordUsage(s.threadId, r.usage);
    });
  }

  /** Processes the orphan reaper killed at start-up or on `threadwarden reap`. */
  recordReaped(count: number): void {
    this.reaped.inc(count);
  }

  /** One turn's usage as the agent reported it; figures it did not report, or that are not numbers, are skipped. */
  recordUsage(threadId: string, usage: { credits?: number; contextPercent?: number }): void {
    const { credits, contextPercent } = usage;
    if (credits !== undefined && Number.isFinite(credits) && credits > 0) this.credits.inc(credits);
    if (contextPercent !== undefined && Number.isFinite(contextPercent) && contextPercent >= 0)
      this.contextPercent.set(threadId, contextPercent);
  }

  recordRateLimit(route: string): void {
    this.rateLimited.inc({ route });
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
