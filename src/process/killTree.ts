import { setTimeout as sleep } from 'node:timers/promises';
import { type MarkedProc, type ProcessTable, type TreeTarget, treeMembers } from './ProcessTable.js';
import { isAlive as isAliveInProc } from './procfs.js';

/** What a tree kill did: the strongest signal it had to send, whether SIGKILL was needed, every pid it signalled. */
export interface KillResult {
  readonly signal: 'SIGTERM' | 'SIGKILL' | 'none';
  readonly forced: boolean;
  readonly pids: readonly number[];
  /** Pids still alive when it gave up; empty unless the kernel refused (e.g. a process in uninterruptible sleep). */
  readonly survivors: readonly number[];
  readonly durationMs: number;
}

export interface KillTreeOptions {
  readonly graceMs: number;
  readonly table: ProcessTable;
  /** How often liveness is polled while waiting. */
  readonly pollMs?: number;
  /** How long to wait for SIGKILLed processes to vanish before giving up. */
  readonly killWaitMs?: number;
  readonly signal?: (pid: number, signal: NodeJS.Signals) => void;
  /** Whether the process with this pid and start time still lives; default reads /proc. */
  readonly isAlive?: (pid: number, startTime: number) => boolean;
  /**
   * Processes that get no SIGTERM, only the SIGKILL after the grace: a sandbox's own bwrap processes. SIGTERM kills
   * bwrap, and its death SIGKILLs the whole PID namespace at once, which would deny the agent its grace.
   */
  readonly spareOnTerm?: readonly { readonly pid: number; readonly startTime: number }[];
  /**
   * Members verified earlier, while the root was alive (by pid and start time): still claimed, with their
   * descendants, after the root died (an agent that crashed leaves MCP servers whose only tie was its session id).
   */
  readonly known?: readonly { readonly pid: number; readonly startTime: number }[];
  /**
   * A process that gets its SIGTERM only once the rest of the tree has gone within the grace: a
   * sandboxed agent's first process. Its exit ends the PID namespace, SIGKILLing whatever still runs, so kiro's
   * wrapper (which dies on SIGTERM without forwarding it) must not die before kiro-cli-chat has shut down cleanly.
   */
  readonly termLast?: { readonly pid: number; readonly startTime: number };
}

interface Known {
  readonly pid: number;
  readonly startTime: number;
}

function defaultSignal(pid: number, signal: NodeJS.Signals): void {
  if (pid === 0 || pid === 1 || pid === -1) return;
  try {
    process.kill(pid, signal);
  } catch {
    // ESRCH: already gone; EPERM: not ours, which a tree member never is.
  }
}

/**
 * Kills every process of a session's tree (group, session id, marker, descendants): SIGTERM, wait up to
 * `graceMs`, SIGKILL the survivors, then verify by pid and start time that none remain. New members found by a
 * rescan (processes forked during the kill) are signalled too. Never signals a pid whose start time changed.
 */
export async function killTree(target: TreeTarget, options: KillTreeOptions): Promise<KillResult> {
  const { table, graceMs } = options;
  const pollMs = options.pollMs ?? 10;
  const killWaitMs = options.killWaitMs ?? 3000;
  const send = options.signal ?? defaultSignal;
  const isAlive = options.isAlive ?? isAliveInProc;
  const started = performance.now();
  const known = new Map<number, Known>();
  for (const k of options.known ?? []) known.set(k.pid, { pid: k.pid, startTime: k.startTime });
  let forced = false;

  const spared = new Set((options.spareOnTerm ?? []).map((p) => `${p.pid}:${p.startTime}`));
  const last = options.termLast;
  const lastKey = last ? `${last.pid}:${last.startTime}` : undefined;
  const live = () => [...known.values()].filter((k) => isAlive(k.pid, k.startTime));
  const signalMembers = (members: readonly MarkedProc[], signal: NodeJS.Signals, holdLast = false) => {
    // One group signal first: it reaches members forked after the scan atomically. Only while the root is alive
    // with its start time (a verified member): a dead root's number may belong to someone else's group by now.
    // (Never with pid 0: process.kill(-0) would signal our own group.)
    const rootVerified = members.some((m) => m.pid === target.pid && m.startTime === target.startTime);
    // Not while a member of the group must wait for its SIGTERM (a sandbox's bwrap, or its first process).
    const groupSpared =
      signal === 'SIGTERM' &&
      (holdLast || members.some((m) => m.pgid === target.pid && spared.has(`${m.pid}:${m.startTime}`)));
    if (target.pid > 1 && rootVerified && !groupSpared) send(-target.pid, signal);
    for (const m of members) {
      known.set(m.pid, { pid: m.pid, startTime: m.startTime });
      if (signal === 'SIGTERM' && spared.has(`${m.pid}:${m.startTime}`)) continue;
      if (holdLast && `${m.pid}:${m.startTime}` === lastKey) continue;
      if (isAlive(m.pid, m.startTime)) send(m.pid, signal);
    }
  };
  // Processes signalled earlier stay claimed (by pid and start time) with their descendants, also once the root
  // that made them ours has exited.
  const rescan = () =>
    treeMembers(table.scan(table.timestamp()), target, process.pid, known.values()).filter(
      (m) => m.state !== 'Z' && m.state !== 'X',
    );

  const waitGone = async (capMs: number, except: ReadonlySet<string> = new Set()) => {
    const deadline = performance.now() + capMs;
    const waiting = () => live().filter((k) => !except.has(`${k.pid}:${k.startTime}`));
    while (waiting().length > 0 && performance.now() < deadline) await sleep(pollMs);
  };

  const first = rescan();
  if (first.length === 0) {
    return {
      signal: 'none',
      forced: false,
      pids: [],
      survivors: [],
      durationMs: performance.now() - started,
    };
  }
  const holdLast = lastKey !== undefined && first.some((m) => `${m.pid}:${m.startTime}` === lastKey);
  signalMembers(first, 'SIGTERM', holdLast);
  if (holdLast && last) {
    // The rest of the tree first, for the whole grace; the first process only once the rest has gone (a survivor
    // of the grace means SIGKILL for all, as without a sandbox).
    const t0 = performance.now();
    const othersGone = () =>
      live().every((k) => `${k.pid}:${k.startTime}` === lastKey || spared.has(`${k.pid}:${k.startTime}`));
    await waitGone(graceMs, new Set([lastKey!, ...spared]));
    if (othersGone() && isAlive(last.pid, last.startTime)) send(last.pid, 'SIGTERM');
    // The rest of the grace for everything, bwrap included: it leaves just after the agent's first process.
    await waitGone(Math.max(0, graceMs - (performance.now() - t0)));
  } else {
    await waitGone(graceMs);
  }

  // Up to three SIGKILL rounds: each rescan catches anything forked while the previous round ran.
  for (let round = 0; round < 3; round++) {
    const remaining = rescan();
    if (remaining.length === 0) break;
    forced = true;
    signalMembers(remaining, 'SIGKILL');
    await waitGone(killWaitMs);
  }
  const survivors = [...new Set([...live().map((k) => k.pid), ...rescan().map((m) => m.pid)])];
  return {
    signal: forced ? 'SIGKILL' : 'SIGTERM',
    forced,
    pids: [...known.keys()].sort((a, b) => a - b),
    survivors,
    durationMs: performance.now() - started,
  };
}
