import { type ProcInfo, readMarker, scanProcesses } from './procfs.js';

/** A process and the marker it carries (undefined when it has none or its environ is unreadable). */
export interface MarkedProc extends ProcInfo {
  readonly marker: string | undefined;
}

/**
 * What identifies one session's process tree: the pty child (pid = pgid = sid, with its start time) and the marker
 * value. A pid of 0 means "marker only" (an orphan whose root is unknown).
 */
export interface TreeTarget {
  readonly pid: number;
  readonly startTime: number;
  readonly marker: string;
}

export interface ProcessTableOptions {
  /** Reads /proc; swapped in tests and benchmarks. */
  readonly scan?: () => ProcInfo[];
  readonly readMarker?: (pid: number) => string | undefined;
  readonly now?: () => number;
}

/**
 * One shared view of /proc. Scans are memoised so that many concurrent tree kills and the monitor share one pass,
 * and markers are cached by pid and start time, since a process's initial environment does not change.
 */
export class ProcessTable {
  private readonly scanFn: () => ProcInfo[];
  private readonly markerFn: (pid: number) => string | undefined;
  private readonly now: () => number;
  private markers = new Map<string, string | undefined>();
  private last: { at: number; procs: MarkedProc[] } | undefined;

  constructor(options: ProcessTableOptions = {}) {
    this.scanFn = options.scan ?? scanProcesses;
    this.markerFn = options.readMarker ?? readMarker;
    this.now = options.now ?? performance.now.bind(performance);
  }

  /** A scan taken at or after `since` (a `now()` timestamp); performs one if the last is older. */
  scan(since = Number.POSITIVE_INFINITY): MarkedProc[] {
    if (this.last && this.last.at >= since) return this.last.procs;
    const at = this.now();
    const next = new Map<string, string | undefined>();
    const procs = this.scanFn().map((p): MarkedProc => {
      const key = `${p.pid}:${p.startTime}`;
      let marker: string | undefined;
      if (this.markers.has(key)) marker = this.markers.get(key);
      else marker = this.markerFn(p.pid);
      next.set(key, marker);
      return { ...p, marker };
    });
    this.markers = next;
    this.last = { at, procs };
    return procs;
  }

  /** The time stamp source scans are measured in. */
  timestamp(): number {
    return this.now();
  }
}

/**
 * The members of one session's tree in a scan: its process group, its session (MCP servers in their own group
 * still share it), its marker (setsid escapers and double forks keep it), and any descendant of those.
 */
export function treeMembers(
  procs: readonly MarkedProc[],
  target: TreeTarget,
  self = process.pid,
): MarkedProc[] {
  const members = new Map<number, MarkedProc>();
  // The kernel keeps a pid reserved while a group or session uses it as its id, so a live leader with another
  // start time means our group and session are empty and the number now belongs to someone else.
  const leaderReused =
    target.pid <= 0 || procs.some((p) => p.pid === target.pid && p.startTime !== target.startTime);
  for (const p of procs) {
    if (p.pid === self || p.pid <= 1) continue;
    const inGroupOrSession = !leaderReused && (p.pgid === target.pid || p.sid === target.pid);
    if (inGroupOrSession || p.marker === target.marker) members.set(p.pid, p);
  }
  // Descendants that both left the session and dropped the marker are still children of a member.
  let grew = members.size > 0;
  while (grew) {
    grew = false;
    for (const p of procs) {
      if (!members.has(p.pid) && p.pid !== self && members.has(p.ppid)) {
        members.set(p.pid, p);
        grew = true;
      }
    }
  }
  return [...members.values()];
}
