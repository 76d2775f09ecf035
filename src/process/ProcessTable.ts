import { type ProcInfo, readMarker, scanProcesses } from './procfs.js';

/** A process and the marker it carries (undefined when it has none or its environ is unreadable). */
export interface MarkedProc extends ProcInfo {
  readonly marker: string | undefined;
}

/**
 * What identifies one session's process tree: the pty child (pid = pgid = sid, with its start time) and the marker
 * value. A pid of 0 means "marker only" (an orphan whose root is unknown, or whose start time was never read).
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

/** A process known by pid and start time (so a reused pid never matches). */
export interface VerifiedPid {
  readonly pid: number;
  readonly startTime: number;
}

/**
 * The members of one session's tree in a scan: its process group and its session (MCP servers in their own group
 * still share it) while the root is alive and verified by its start time, its marker (setsid escapers and double
 * forks keep it), and any descendant of those or of `roots` (processes verified earlier by pid and start time).
 */
export function treeMembers(
  procs: readonly MarkedProc[],
  target: TreeTarget,
  self = process.pid,
  roots: Iterable<VerifiedPid> = [],
): MarkedProc[] {
  return new TreeIndex(procs, self).members(target, roots);
}

/**
 * Tree membership for many targets over one scan: indexes the scan once by group, session, marker and parent,
 * so finding every session's tree costs the scan plus the members, not sessions × processes.
 */
export class TreeIndex {
  private readonly byGroup = new Map<number, MarkedProc[]>();
  private readonly bySession = new Map<number, MarkedProc[]>();
  private readonly byMarker = new Map<string, MarkedProc[]>();
  private readonly byParent = new Map<number, MarkedProc[]>();
  private readonly byPid = new Map<number, MarkedProc>();

  constructor(procs: readonly MarkedProc[], self = process.pid) {
    const add = <K>(map: Map<K, MarkedProc[]>, key: K, p: MarkedProc) => {
      const list = map.get(key);
      if (list) list.push(p);
      else map.set(key, [p]);
    };
    for (const p of procs) {
      if (p.pid === self || p.pid <= 1) continue;
      this.byPid.set(p.pid, p);
      add(this.byGroup, p.pgid, p);
      add(this.bySession, p.sid, p);
      add(this.byParent, p.ppid, p);
      if (p.marker !== undefined) add(this.byMarker, p.marker, p);
    }
  }

  /** The members of one session's tree (see treeMembers). */
  members(target: TreeTarget, roots: Iterable<VerifiedPid> = []): MarkedProc[] {
    const found = new Map<number, MarkedProc>();
    // Group and session ids claim processes only while the root itself is alive with its start time: then the
    // kernel keeps the number reserved and every member descends from our tree. Once the root is gone, a daemon
    // that reused the number (setsid) and forked would share the ids without being ours; only the marker, or
    // descent from a process verified by pid and start time, may claim a process then.
    const leader = this.byPid.get(target.pid);
    const leaderVerified = target.pid > 1 && leader !== undefined && leader.startTime === target.startTime;
    if (leaderVerified) {
      for (const p of this.byGroup.get(target.pid) ?? []) found.set(p.pid, p);
      for (const p of this.bySession.get(target.pid) ?? []) found.set(p.pid, p);
    }
    for (const p of this.byMarker.get(target.marker) ?? []) found.set(p.pid, p);
    for (const r of roots) {
      const p = this.byPid.get(r.pid);
      if (p && p.startTime === r.startTime) found.set(p.pid, p);
    }
    const queue = [...found.keys()];
    while (queue.length > 0) {
      for (const child of this.byParent.get(queue.pop()!) ?? []) {
        if (!found.has(child.pid)) {
          found.set(child.pid, child);
          queue.push(child.pid);
        }
      }
    }
    return [...found.values()];
  }
}
