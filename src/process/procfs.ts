import { readdirSync, readFileSync } from 'node:fs';

/** One process as read from /proc/<pid>/stat. `startTime` is in clock ticks since boot and, with pid, identifies a process uniquely. */
export interface ProcInfo {
  readonly pid: number;
  readonly ppid: number;
  readonly pgid: number;
  readonly sid: number;
  readonly state: string;
  readonly startTime: number;
  readonly comm: string;
  /** utime + stime in clock ticks. */
  readonly cpuTicks: number;
  /** Resident set size in pages. */
  readonly rssPages: number;
}

export const MARKER_VAR = 'THREADWARDEN_MARKER';

/**
 * Parses the text of /proc/<pid>/stat. comm may contain spaces and parentheses, so fields are counted from the
 * last ')'. Only the fields we use are cut out (this runs for every process on every monitor tick).
 */
export function parseStat(text: string): ProcInfo | undefined {
  const open = text.indexOf('(');
  const close = text.lastIndexOf(')');
  if (open < 0 || close < open) return undefined;
  // fields[n] holds field n + 3 of stat(5): state is field 3.
  const fields: string[] = [];
  let at = close + 2;
  while (fields.length < 22 && at < text.length) {
    const next = text.indexOf(' ', at);
    const end = next < 0 ? text.length : next;
    fields.push(text.slice(at, end));
    at = end + 1;
  }
  const field = (n: number) => Number(fields[n - 3]);
  const info: ProcInfo = {
    pid: Number(text.slice(0, open)),
    comm: text.slice(open + 1, close),
    state: fields[0] ?? '?',
    ppid: field(4),
    pgid: field(5),
    sid: field(6),
    cpuTicks: field(14) + field(15),
    startTime: field(22),
    rssPages: field(24),
  };
  return Number.isFinite(info.pid) && Number.isFinite(info.startTime) ? info : undefined;
}

export function readProc(pid: number): ProcInfo | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** Every pid currently in /proc. */
export function listPids(): number[] {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    const c = name.charCodeAt(0);
    if (c >= 48 && c <= 57) pids.push(Number(name));
  }
  return pids;
}

/** Every process, one pass over /proc. Processes that vanish mid-scan are skipped. */
export function scanProcesses(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const pid of listPids()) {
    const info = readProc(pid);
    if (info) out.push(info);
  }
  return out;
}

/** The value of THREADWARDEN_MARKER in a process's environment, or undefined (also when unreadable). */
export function readMarker(pid: number): string | undefined {
  let env: Buffer;
  try {
    env = readFileSync(`/proc/${pid}/environ`);
  } catch {
    return undefined;
  }
  const key = Buffer.from(`${MARKER_VAR}=`);
  let at = env.indexOf(key);
  while (at > 0 && env[at - 1] !== 0) at = env.indexOf(key, at + 1);
  if (at < 0) return undefined;
  const end = env.indexOf(0, at);
  return env.subarray(at + key.length, end < 0 ? env.length : end).toString('utf8');
}

/** True while the process with this pid and start time exists and is not a zombie. */
export function isAlive(pid: number, startTime: number): boolean {
  const info = readProc(pid);
  return info !== undefined && info.startTime === startTime && info.state !== 'Z' && info.state !== 'X';
}

/** USER_HZ: clock ticks per second in /proc times. Linux has fixed it at 100 for user space on every architecture we run on. */
export const CLOCK_TICKS = 100;

/** Seconds since boot, from /proc/uptime. */
export function uptimeSeconds(): number {
  return Number(readFileSync('/proc/uptime', 'utf8').split(' ')[0]);
}
