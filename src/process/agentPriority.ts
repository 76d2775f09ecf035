import { readFileSync, writeFileSync } from 'node:fs';
import { setPriority } from 'node:os';
import { readProc } from './procfs.js';

/**
 * Lowers an agent's CPU priority below the bot's (AGENT_NICE), so agents that saturate the CPU cannot starve the
 * bot's event loop. Every agent is a session leader, and on Linux with autogroup scheduling (the default on most
 * distributions) each session is its own scheduling group with the same weight as the bot's: 200 busy agents
 * then take 200/201 of the CPU whenever they all run, and a plain per-process nice changes nothing across groups.
 * So the agent's autogroup nice is set (/proc/<pid>/autogroup, which covers every process of its session, also
 * those started later), and its own nice too (kernels without autogroup; what it starts afterwards inherits it).
 *
 * Three things make the autogroup write need care: the kernel allows an unprivileged process one write per 100 ms
 * (EAGAIN otherwise); a sandboxed ACP agent calls setsid (a new group) a moment after it appears; and a pty child
 * is handed over right after fork, before it has called setsid, while it is still in the bot's own group. A write
 * then would lower the bot itself, so nothing is written while the agent shares the bot's group: the keeper looks
 * again at RECHECK_MS and retries every RETRY_MS until the agent's own group shows the value.
 */

/** When to look again after the first write, ms after it (a later setsid starts a new group at nice 0). */
const RECHECK_MS = [100, 500, 2000];
/** The kernel's limit for unprivileged autogroup writes is one per 100 ms. */
const RETRY_MS = 110;
/** Give up on one agent after this long (it keeps its own nice, and the kill path does not depend on this). */
const GIVE_UP_MS = 120_000;

export interface PriorityFs {
  /** /proc/<pid>/autogroup's text, or undefined when the file is missing (no autogroup, or the process is gone). */
  readAutogroup(pid: number): string | undefined;
  /** The bot's own autogroup text (/proc/self/autogroup). */
  readOwnAutogroup(): string | undefined;
  /** Writes the autogroup nice; throws the errno error. */
  writeAutogroup(pid: number, nice: number): void;
  setNice(pid: number, nice: number): void;
  startTime(pid: number): number | undefined;
}

const procFs: PriorityFs = {
  readAutogroup: (pid) => {
    try {
      return readFileSync(`/proc/${pid}/autogroup`, 'utf8');
    } catch {
      return undefined;
    }
  },
  readOwnAutogroup: () => {
    try {
      return readFileSync('/proc/self/autogroup', 'utf8');
    } catch {
      return undefined;
    }
  },
  writeAutogroup: (pid, nice) => writeFileSync(`/proc/${pid}/autogroup`, String(nice)),
  setNice: (pid, nice) => setPriority(pid, nice),
  startTime: (pid) => readProc(pid)?.startTime,
};

interface Entry {
  readonly pid: number;
  readonly startTime: number;
  readonly nice: number;
  readonly since: number;
  /** Next time to look, ms (performance.now()). */
  due: number;
  checks: number;
}

/** The autogroup nice /proc shows, e.g. "/autogroup-1234 nice 19" → 19. */
export function autogroupNice(text: string | undefined): number | undefined {
  const m = text === undefined ? null : /nice\s+(-?\d+)/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** The group's name, e.g. "/autogroup-1234 nice 19" → "/autogroup-1234". */
export function autogroupName(text: string | undefined): string | undefined {
  return text === undefined ? undefined : /^\S+/.exec(text)?.[0];
}

export class PriorityKeeper {
  private readonly fs: PriorityFs;
  private readonly now: () => number;
  private entries: Entry[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(fs: PriorityFs = procFs, now: () => number = () => performance.now()) {
    this.fs = fs;
    this.now = now;
  }

  /** Lowers the agent `pid` (with its start time, so a reused pid is never touched) to `nice` (1..19). */
  lower(pid: number, startTime: number | undefined, nice: number): void {
    if (!(nice > 0) || startTime === undefined) return;
    try {
      this.fs.setNice(pid, nice);
    } catch {
      // gone, or not ours: the autogroup write below says the same
    }
    const entry: Entry = { pid, startTime, nice, since: this.now(), due: 0, checks: 0 };
    this.entries.push(entry);
    this.tick();
  }

  /** Agents still being looked after (for tests). */
  get pending(): number {
    return this.entries.length;
  }

  /** Looks at every entry that is due; one refused write (rate limit) defers the writes behind it. */
  tick(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = this.now();
    let limited = false;
    const own = autogroupName(this.fs.readOwnAutogroup());
    const keep: Entry[] = [];
    for (const e of this.entries) {
      if (e.due > now) {
        keep.push(e);
        continue;
      }
      if (this.fs.startTime(e.pid) !== e.startTime || now - e.since > GIVE_UP_MS) continue;
      const text = this.fs.readAutogroup(e.pid);
      const shown = autogroupNice(text);
      if (shown === undefined) continue; // no autogroup here: the process nice is all there is
      if (own !== undefined && autogroupName(text) === own) {
        // Not in a session of its own yet (a pty child before its setsid): writing now would lower the bot.
        e.due = now + RETRY_MS;
        keep.push(e);
        continue;
      }
      if (shown < e.nice) {
        if (limited) {
          e.due = now + RETRY_MS;
          keep.push(e);
          continue;
        }
        try {
          this.fs.writeAutogroup(e.pid, e.nice);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') continue; // not allowed here: nothing to retry
          limited = true;
          e.due = now + RETRY_MS;
          keep.push(e);
          continue;
        }
      }
      const next = RECHECK_MS[e.checks++];
      if (next === undefined) continue; // seen lowered after the last look: done
      e.due = e.since + next;
      keep.push(e);
    }
    this.entries = keep;
    if (keep.length === 0) return;
    const wait = Math.max(1, Math.min(...keep.map((e) => e.due)) - now);
    this.timer = setTimeout(() => this.tick(), wait);
    this.timer.unref();
  }

  /** Stops looking (tests; the bot's keeper runs as long as the process). */
  close(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.entries = [];
  }
}

/** The bot's one keeper: every spawn goes through spawnAgent, which hands it the agent's pid. */
export const agentPriority = new PriorityKeeper();
