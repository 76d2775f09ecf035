import type { AgentSession } from '../agent/AgentSession.js';
import type { Config } from '../config/Config.js';
import type { EndReason } from '../endReasons.js';
import type { Logger } from '../log/logger.js';
import type { SessionPool } from '../pool/SessionPool.js';
import { type MarkedProc, TreeIndex } from '../process/ProcessTable.js';
import { CLOCK_TICKS } from '../process/procfs.js';
import type { Store } from '../store/Store.js';

export type MonitorConfig = Pick<
  Config,
  'resourceCheckIntervalMs' | 'maxCpuPercent' | 'maxStuckMs' | 'maxMemoryMb' | 'maxTurnSilenceMs'
>;

/** One session's tree as last sampled. */
export interface SessionUsage {
  /** CPU of the whole tree since the previous tick, percent of one core. */
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
  /** Bytes per memory page; 4096 on every Linux this runs on. */
  readonly pageSize?: number;
}

interface Previous {
  readonly ticks: Map<string, number>;
  readonly at: number;
}

/**
 * Samples every session's whole tree once per interval from ONE /proc pass (the pool's shared ProcessTable,
 * which the tree kill also uses), and ends sessions over their limits: RSS over MAX_MEMORY_MB (`memory_limit`),
 * CPU over MAX_CPU_PERCENT while a turn has run longer than MAX_STUCK_MS (`cpu_limit`), or a turn silent for
 * longer than MAX_TURN_SILENCE_MS (`stuck`).
 *
 * CPU and RSS come from the same /proc/<pid>/stat read as the tree membership (utime + stime, rss) rather than
 * pidusage: pidusage would read the same files a second time per pid, and the tick must stay cheap at 200
 * sessions (~600 processes).
 */
export class ResourceMonitor {
  private readonly pool: SessionPool;
  private readonly cfg: MonitorConfig;
  private readonly log: Logger;
  private readonly store: Store | undefined;
  private readonly now: () => number;
  private readonly pageMb: number;
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
    this.pageMb = (options.pageSize ?? 4096) / (1024 * 1024);
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

  /** One pass: sample every live session and apply the limits. */
  async tick(): Promise<TickResult> {
    const t0 = performance.now();
    const table = this.pool.table;
    const index = new TreeIndex(table.scan(table.timestamp()));
    const at = this.now();
    const ended: { threadId: string; reason: EndReason }[] = [];
    let processes = 0;
    const sessions = this.pool.list();
    for (const s of sessions) {
      if (
        s.pid === undefined ||
        s.pidStartTime === undefined ||
        s.state === 'closing' ||
        s.state === 'closed'
      )
        continue;
      const members = index
        .members({ pid: s.pid, startTime: s.pidStartTime, marker: s.marker })
        .filter((p) => p.state !== 'Z');
      processes += members.length;
      const usage = this.sample(s, members, at);
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

  private sample(s: AgentSession, members: readonly MarkedProc[], at: number): SessionUsage {
    const ticks = new Map<string, number>();
    let cpuTicks = 0;
    let rssPages = 0;
    const prev = this.previous.get(s.id);
    // /proc counts CPU in 10 ms ticks: over a shorter window the rate is noise, so keep the last figure and baseline.
    const last = this.usageByThread.get(s.threadId);
    if (prev && last && at - prev.at < 100) {
      const memMb = members.reduce((n, p) => n + p.rssPages, 0) * this.pageMb;
      return { cpu: last.cpu, memMb, pids: members.map((m) => m.pid) };
    }
    for (const p of members) {
      const key = `${p.pid}:${p.startTime}`;
      ticks.set(key, p.cpuTicks);
      // A process new since the last tick counts from zero; the first tick only sets the baseline.
      cpuTicks += prev ? p.cpuTicks - (prev.ticks.get(key) ?? 0) : 0;
      rssPages += p.rssPages;
    }
    this.previous.set(s.id, { ticks, at });
    const seconds = prev ? (at - prev.at) / 1000 : 0;
    const cpu = seconds > 0 ? Math.max(0, (cpuTicks / CLOCK_TICKS / seconds) * 100) : 0;
    const memMb = rssPages * this.pageMb;
    const peak = this.peaks.get(s.id) ?? { cpu: 0, mem: 0 };
    if (cpu > peak.cpu || memMb > peak.mem) {
      const next = { cpu: Math.max(cpu, peak.cpu), mem: Math.max(memMb, peak.mem) };
      this.peaks.set(s.id, next);
      this.store?.recordPeaks(s.id, Math.round(next.cpu * 10) / 10, Math.round(next.mem * 10) / 10);
    }
    return { cpu, memMb, pids: members.map((m) => m.pid) };
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
    if (u.cpu > c.maxCpuPercent && turnMs > c.maxStuckMs) return 'cpu_limit';
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
    this.warned.delete(s.id);
    this.peaks.delete(s.id);
    if (this.pool.get(s.threadId) === undefined) this.usageByThread.delete(s.threadId);
  }
}
