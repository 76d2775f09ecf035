import pidusage from 'pidusage';
import type { MarkedProc } from '../process/ProcessTable.js';
import type { UsageSample, UsageSampler } from './UsageSampler.js';

export interface PidusageSamplerOptions {
  /**
   * How long pidusage keeps a pid it was not asked about, ms. Its expiry is what closes the /proc/<pid>/stat
   * descriptor it holds per pid; `pidusage.clear()` drops them without closing (one descriptor leaked per sampled
   * pid per call, measured), so gone pids are left to expire instead. Default 3 monitor intervals.
   */
  readonly maxAgeMs: number;
}

/**
 * Samples the pids the monitor found with pidusage (one batched call per tick). Only its raw counters are used
 * (ctime, memory): the monitor computes CPU rates itself, keyed by pid and start time, so a reused pid never
 * inherits another process's history.
 */
export class PidusageSampler implements UsageSampler {
  readonly name = 'pidusage';
  private readonly maxAgeMs: number;

  constructor(options: PidusageSamplerOptions) {
    this.maxAgeMs = options.maxAgeMs;
  }

  async sample(procs: readonly MarkedProc[]): Promise<Map<number, UsageSample>> {
    const out = new Map<number, UsageSample>();
    if (procs.length === 0) return out;
    let stats: Record<string, pidusage.Status | undefined>;
    try {
      // With two or more pids pidusage skips the ones that vanished; with one, a vanished pid rejects.
      stats = (await pidusage(
        procs.map((p) => p.pid),
        { maxage: this.maxAgeMs },
      )) as Record<string, pidusage.Status | undefined>;
    } catch {
      return out;
    }
    for (const p of procs) {
      const s = stats[p.pid];
      if (s) out.set(p.pid, { cpuMs: s.ctime, rssBytes: s.memory });
    }
    return out;
  }
}
