import type { AgentSession } from '../agent/AgentSession.js';
import type { Config } from '../config/Config.js';
import type { EndReason } from '../endReasons.js';
import type { Logger } from '../log/logger.js';
import type { SessionPool } from '../pool/SessionPool.js';
import { type MarkedProc, TreeIndex } from '../process/ProcessTable.js';
import type { Store } from '../store/Store.js';
import { PidusageSampler } from './PidusageSampler.js';
import type { UsageSample, UsageSampler } from './UsageSampler.js';

export type MonitorConfig = Pick<
  Config,
  'resourceCheckIntervalMs' | 'maxCpuPercent' | 'maxStuckMs' | 'maxMemoryMb' | 'maxTurnSilenceMs'
>;

/** One session's tree as last sampled. */
export interface SessionUsage {
  /**
   * CPU of the whole tree since the previous tick, percent of ONE core, summed over every process of the tree: a
   * build keeping 8 cores busy reads 800.
   */
  readonly cpu: number;
  /** Resident memory of the whole tree, MB. */
  readonly memMb: number;
  readonly pids: readonly number[];
}

export interface TickResult {
  readonly sessions: number;
  readonly processes: number;
  readonly durationMs: number;
  readonly ended: readonly { threadId: string; reason: EndReason }[];
}

export interface ResourceMonitorOptions {
  readonly pool: SessionPool;
  readonly config: MonitorConfig;
  readonly logger: Logger;
  readonly store?: Store | undefined;
  readonly now?: () => number;
  /** Reads CPU and memory of the pids each tick found; default pidusage. */
  readonly sampler?: UsageSampler;
}

interface Previous {
  /** CPU ms by `pid:startTime`. */
  readonly cpuMs: Map<string, number>;
  readonly at: number;
}

/**
 * Finds every session's whole tree once per interval from ONE /proc pass (the pool's shared ProcessTable, which
 * the tree kill also uses), samples the pids found (pidusage by default), and ends sessions over their limits:
 *
 * - `memory_limit`: the tree's RSS over MAX_MEMORY_MB.
 * - `cpu_limit`: the tree's CPU (percent of one core, summed over the tree) above MAX_CPU_PERCENT in EVERY sample
 *   covering the last MAX_STUCK_MS, while a turn has run longer than MAX_STUCK_MS and the agent printed nothing
 *   in that window. A parallel build at 800 % that keeps producing output is work, not a hang.
 * - `stuck`: a turn silent for longer than MAX_TURN_SILENCE_MS.
 */
export class ResourceMonitor {
  private readonly pool: SessionPool;
  private readonly cfg: MonitorConfig;
  private readonly log: Logger;
  private readonly store: Store | undefined;
  private readonly now: () => number;
  private readonly sampler: UsageSampler;
  /** Per session: start of the sampling interval that began the current run of over-limit CPU samples. */
  private readonly cpuOverSince = new Map<string, number>();
  private readonly usageByThread = new Map<string, SessionUsage>();
  private readonly previous = new Map<string, Previous>();
  private readonly warned = new Map<string, Set<string>>();
  private readonly peaks = new Map<string, { cpu: number; mem: number }>();
  private timer: NodeJS.Timeout | undefined;
  private readonly onSessionEnd = (s: AgentSession) => this.forget(s);
  private running: Promise<TickResult> | undefined;
  private closed = false;

  constructor(options: ResourceMonitorOptions) {
    this.pool = options.pool;
    this.cfg = options.config;
    this.log = options.logger.child({ component: 'monitor' });
    this.store = options.store;
    this.now = options.now ?? Date.now;
    this.sampler =
      options.sampler ?? new PidusageSampler({ maxAgeMs: 3 * this.cfg.resourceCheckIntervalMs + 1000 });
    this.pool.on('sessionEnd', this.onSessionEnd);
  }

  start(): void {
    if (this.timer || this.closed) return;
    this.timer = setInterval(() => {
      // Never overlap ticks on a slow machine.
      if (!this.running) this.running = this.tick().finally(() => (this.running = undefined));
    }, this.cfg.resourceCheckIntervalMs);
    this.timer.unref();
  }

  /** The last sample of a thread's session, for /health and /pool-status. */
  usage(threadId: string): SessionUsage | undefined {
    return this.usageByThread.get(threadId);
  }

  /** One pass: find every live session's tree, sample it, and apply the limits. */
  async tick(): Promise<TickResult> {
    const t0 = performance.now();
    const table = this.pool.table;
    const index = new TreeIndex(table.scan(table.timestamp()));
    const sessions = this.pool.list();
    const trees: { s: AgentSession; members: MarkedProc[] }[] = [];
    for (const s of sessions) {
      if (s.pid === undefined || s.state === 'closing' || s.state === 'closed') continue;
      const members = index
        .members({
          pid: s.pidStartTime === undefined ? 0 : s.pid,
          startTime: s.pidStartTime ?? -1,
          marker: s.marker,
        })
        .filter((p) => p.state !== 'Z');
      trees.push({ s, members });
    }
    // One batched read for every pid of every tree.
    const samples = await this.sampler.sample(trees.flatMap((t) => t.members));
    const at = this.now();
    const ended: { threadId: string; reason: EndReason }[] = [];
    let processes = 0;
    for (const { s, members } of trees) {
      if (this.closed || s.state === 'closing' || s.state === 'closed') continue;
      const present = members.filter((m) => samples.has(m.pid));
      processes += present.length;
      const usage = this.sample(s, present, samples, at);
      this.usageByThread.set(s.threadId, usage);
      const reason = this.verdict(s, usage, at);
      if (reason) {
        ended.push({ threadId: s.threadId, reason });
        this.log.warn(
          { threadId: s.threadId, reason, cpu: usage.cpu, memMb: usage.memMb },
          'ending session over its limit',
        );
        void this.pool.close(s.threadId, reason);
      }
    }
    return { sessions: sessions.length, processes, durationMs: performance.now() - t0, ended };
  }

  /** Idempotent: stops the timer. */
  close(): void {
    this.closed = true;
    this.pool.off('sessionEnd', this.onSessionEnd);
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private sample(
    s: AgentSession,
    members: readonly MarkedProc[],
    samples: ReadonlyMap<number, UsageSample>,
    at: number,
  ): SessionUsage {
    const memMb = members.reduce((n, p) => n + (samples.get(p.pid)?.rssBytes ?? 0), 0) / (1024 * 1024);
    const pids = members.map((m) => m.pid);
    const prev = this.previous.get(s.id);
    // /proc counts CPU in 10 ms ticks: over a shorter window the rate is noise, so keep the last figure and baseline.
    const last = this.usageByThread.get(s.threadId);
    if (prev && last && at - prev.at < 100) return { cpu: last.cpu, memMb, pids };
    const cpuMs = new Map<string, number>();
    let usedMs = 0;
    for (const p of members) {
      const key = `${p.pid}:${p.startTime}`;
      const now = samples.get(p.pid)?.cpuMs ?? 0;
      cpuMs.set(key, now);
      // A process new since the last tick counts from zero; the first tick only sets the baseline.
      if (prev) usedMs += now - (prev.cpuMs.get(key) ?? 0);
    }
    this.previous.set(s.id, { cpuMs, at });
    const windowMs = prev ? at - prev.at : 0;
    const cpu = windowMs > 0 ? Math.max(0, (usedMs / windowMs) * 100) : 0;
    if (prev) {
      // A run of over-limit samples starts where the first one's measuring interval started.
      if (cpu > this.cfg.maxCpuPercent) {
        if (!this.cpuOverSince.has(s.id)) this.cpuOverSince.set(s.id, prev.at);
      } else this.cpuOverSince.delete(s.id);
    }
    const peak = this.peaks.get(s.id) ?? { cpu: 0, mem: 0 };
    if (cpu > peak.cpu || memMb > peak.mem) {
      const next = { cpu: Math.max(cpu, peak.cpu), mem: Math.max(memMb, peak.mem) };
      this.peaks.set(s.id, next);
      this.store?.recordPeaks(s.id, Math.round(next.cpu * 10) / 10, Math.round(next.mem * 10) / 10);
    }
    return { cpu, memMb, pids };
  }

  private verdict(s: AgentSession, u: SessionUsage, at: number): EndReason | undefined {
    const c = this.cfg;
    const turnMs = s.turnStartedAt === undefined ? 0 : at - s.turnStartedAt;
    const silentMs =
      s.turnStartedAt === undefined || s.pendingPermission !== undefined
        ? 0
        : at - Math.max(s.lastOutputAt, s.turnStartedAt);
    this.warnOnce(s, 'memory', u.memMb > c.maxMemoryMb, { memMb: Math.round(u.memMb), limit: c.maxMemoryMb });
    this.warnOnce(s, 'cpu', u.cpu > c.maxCpuPercent, { cpu: Math.round(u.cpu), limit: c.maxCpuPercent });
    this.warnOnce(s, 'silence', silentMs > c.maxTurnSilenceMs / 2, { silentMs, limit: c.maxTurnSilenceMs });
    if (u.memMb > c.maxMemoryMb) return 'memory_limit';
    const overSince = this.cpuOverSince.get(s.id);
    const overMs = overSince === undefined ? 0 : at - overSince;
    // Sustained: every sample over the whole window was above the limit, and the turn said nothing meanwhile.
    if (turnMs > c.maxStuckMs && overMs >= c.maxStuckMs && silentMs >= c.maxStuckMs) return 'cpu_limit';
    if (silentMs > c.maxTurnSilenceMs) return 'stuck';
    return undefined;
  }

  /** Logs a warning the first time a figure crosses its limit, and again only after it came back under. */
  private warnOnce(s: AgentSession, what: string, over: boolean, detail: Record<string, number>): void {
    let set = this.warned.get(s.id);
    if (!set) {
      set = new Set();
      this.warned.set(s.id, set);
    }
    if (over && !set.has(what)) {
      set.add(what);
      this.log.warn({ threadId: s.threadId, sessionId: s.id, ...detail }, `${what} over its limit`);
      this.store?.recordEvent(s.id, 'limit_warning', { what, ...detail });
    } else if (!over) set.delete(what);
  }

  private forget(s: AgentSession): void {
    this.previous.delete(s.id);
    this.cpuOverSince.delete(s.id);
    this.warned.delete(s.id);
    this.peaks.delete(s.id);
    if (this.pool.get(s.threadId) === undefined) this.usageByThread.delete(s.threadId);
  }
}
