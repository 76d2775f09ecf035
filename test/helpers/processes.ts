import { readFileSync } from 'node:fs';
import { isAlive, type ProcInfo, readProc, scanProcesses } from '../../src/process/procfs.js';
import { waitFor } from './wait.js';

export interface Pid {
  readonly pid: number;
  readonly startTime: number;
}

/** Identity (pid + start time) of live pids; unknown pids are dropped. */
export function identify(pids: Iterable<number>): Pid[] {
  const out: Pid[] = [];
  for (const pid of pids) {
    const info = readProc(pid);
    if (info && info.state !== 'Z') out.push({ pid, startTime: info.startTime });
  }
  return out;
}

/** Every live process that carries `marker` in its environment or belongs to the session/group `root`. */
export function treeOf(root: number, marker?: string): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const p of scanProcesses()) {
    if (p.pid === process.pid || p.state === 'Z') continue;
    if (p.sid === root || p.pgid === root || (marker && envHas(p.pid, marker))) out.push(p);
  }
  return out;
}

function envHas(pid: number, marker: string): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').includes(marker);
  } catch {
    return false;
  }
}

export function alive(pids: readonly Pid[]): Pid[] {
  return pids.filter((p) => isAlive(p.pid, p.startTime));
}

/** Waits until none of `pids` is alive (by pid and start time); returns how long it took. */
export async function expectAllGone(pids: readonly Pid[], timeoutMs = 5000): Promise<number> {
  const t0 = performance.now();
  await waitFor(
    () => alive(pids).length === 0,
    `pids ${alive(pids)
      .map((p) => p.pid)
      .join(',')} to exit`,
    timeoutMs,
  );
  return performance.now() - t0;
}

/** Test cleanup: SIGKILL pids this test started (never by name) and wait until they are gone. */
export async function killAll(pids: readonly Pid[]): Promise<void> {
  for (const p of alive(pids)) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await expectAllGone(pids, 5000);
}
