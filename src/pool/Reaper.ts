import { readlinkSync } from 'node:fs';
import type { Logger } from '../log/logger.js';
import { type KillResult, killTree } from '../process/killTree.js';
import { type Marker, parseMarker } from '../process/marker.js';
import type { ProcessTable } from '../process/ProcessTable.js';
import { isAlive } from '../process/procfs.js';
import type { Store } from '../store/Store.js';

export interface ReapOptions {
  readonly table: ProcessTable;
  readonly logger: Logger;
  readonly graceMs: number;
  /** Rows left open by dead owners are closed as `bot_restart` here. */
  readonly store?: Store | undefined;
  /** List what would be killed, kill nothing, write nothing. */
  readonly dryRun?: boolean;
  /**
   * Which markers this reaper may act on (processes and rows alike); default every marker. The demo passes its
   * own instances only, so a demo run never ends what a real bot on the same host left for its own restart.
   */
  readonly owns?: (marker: Marker) => boolean;
}

export interface ReapedSession {
  readonly marker: string;
  readonly sessionId: string;
  readonly instanceId: string;
  /** Pids found (dry run) or killed. */
  readonly pids: readonly number[];
  readonly kill: KillResult | undefined;
}

export interface ReapResult {
  readonly sessions: readonly ReapedSession[];
  readonly rowsClosed: number;
  readonly durationMs: number;
}

/**
 * Kills every process whose marker names an owner that is no longer alive (a crashed or SIGKILLed bot), and closes
 * the SQLite rows such owners left open as `bot_restart`. Processes of a live bot, this one or another, are never
 * touched, so `threadwarden reap` is safe while the bot runs.
 */
export async function reapOrphans(options: ReapOptions): Promise<ReapResult> {
  const started = performance.now();
  const { table, logger, store } = options;
  const ownerAlive = (marker: string) => {
    const m = parseMarker(marker);
    return m !== undefined && isAlive(m.ownerPid, m.ownerStart);
  };
  const { owns } = options;
  const inScope = (marker: string) => {
    if (!owns) return true;
    const m = parseMarker(marker);
    return m !== undefined && owns(m);
  };

  // A marker names its owner by pid in the owner's pid namespace: a bot in a container is pid 6 there, and some
  // other process (or none) here. Processes of another pid namespace are that namespace's bot's business.
  const ownNamespace = pidNamespace('self');
  const foreign = (pid: number) => {
    const ns = pidNamespace(String(pid));
    return ns !== undefined && ownNamespace !== undefined && ns !== ownNamespace;
  };
  const orphans = new Map<string, number[]>();
  for (const p of table.scan(table.timestamp())) {
    if (!p.marker || p.state === 'Z' || !inScope(p.marker) || foreign(p.pid) || ownerAlive(p.marker))
      continue;
    orphans.set(p.marker, [...(orphans.get(p.marker) ?? []), p.pid]);
  }
  const openRows = store
    ? store.openSessions().filter((r) => inScope(r.marker) && !ownerAlive(r.marker))
    : [];
  const rowByMarker = new Map(openRows.map((r) => [r.marker, r]));
  for (const r of openRows) if (!orphans.has(r.marker) && r.pid !== null) orphans.set(r.marker, []);

  const sessions = await Promise.all(
    [...orphans].map(async ([marker, pids]): Promise<ReapedSession> => {
      const parsed = parseMarker(marker);
      const row = rowByMarker.get(marker);
      const base = { marker, sessionId: parsed?.sessionId ?? '?', instanceId: parsed?.instanceId ?? '?' };
      if (options.dryRun) return { ...base, pids, kill: undefined };
      // The row knows the root (pid = pgid = sid), which also reaches processes that dropped the marker.
      const target = { pid: row?.pid ?? 0, startTime: row?.pidStart ?? -1, marker };
      const kill = await killTree(target, { graceMs: options.graceMs, table });
      if (kill.pids.length > 0)
        logger.warn({ marker, pids: kill.pids, forced: kill.forced }, 'reaped orphaned agent processes');
      return { ...base, pids: kill.pids, kill };
    }),
  );

  let rowsClosed = 0;
  if (store && !options.dryRun) {
    const bySession = new Map(sessions.map((s) => [s.marker, s]));
    for (const row of openRows) {
      const kill = bySession.get(row.marker)?.kill;
      store.endSession(row.id, {
        reason: 'bot_restart',
        endedAt: Date.now(),
        exitCode: undefined,
        exitSignal: undefined,
        killSignal: kill?.signal ?? 'none',
        forced: kill?.forced ?? false,
        pidsKilled: kill?.pids ?? [],
        teardownMs: kill?.durationMs ?? 0,
        lastOutput: undefined,
      });
      rowsClosed++;
    }
    if (rowsClosed > 0)
      logger.warn({ rowsClosed }, 'closed sessions left open by an earlier instance as bot_restart');
  }
  return { sessions, rowsClosed, durationMs: performance.now() - started };
}

/** The pid namespace of /proc/<which> (`self` or a pid), or undefined when it cannot be read. */
function pidNamespace(which: string): string | undefined {
  try {
    return readlinkSync(`/proc/${which}/ns/pid`);
  } catch {
    return undefined;
  }
}
