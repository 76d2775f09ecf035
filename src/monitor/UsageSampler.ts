import type { MarkedProc } from '../process/ProcessTable.js';
import { CLOCK_TICKS } from '../process/procfs.js';

/** One process's counters at one instant. */
export interface UsageSample {
  /** CPU time used since the process started (user + system), ms. */
  readonly cpuMs: number;
  /** Resident set size, bytes. */
  readonly rssBytes: number;
}

/**
 * Reads CPU and memory counters for processes the monitor already found (by its single /proc pass). A pid missing
 * from the result is gone. Two implementations: pidusage (the default) and the scan's own figures (no second read).
 */
export interface UsageSampler {
  readonly name: string;
  sample(procs: readonly MarkedProc[]): Promise<Map<number, UsageSample>>;
}

/** Takes the counters from the scan itself (utime + stime, rss of /proc/<pid>/stat): no extra reads. */
export class ProcStatSampler implements UsageSampler {
  readonly name = 'procstat';
  private readonly pageSize: number;

  constructor(pageSize = 4096) {
    this.pageSize = pageSize;
  }

  sample(procs: readonly MarkedProc[]): Promise<Map<number, UsageSample>> {
    const out = new Map<number, UsageSample>();
    for (const p of procs)
      out.set(p.pid, { cpuMs: (p.cpuTicks * 1000) / CLOCK_TICKS, rssBytes: p.rssPages * this.pageSize });
    return Promise.resolve(out);
  }
}
