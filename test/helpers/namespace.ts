import { readlinkSync } from 'node:fs';
import { readProc, scanProcesses } from '../../src/process/procfs.js';
import { innermostPid } from '../../src/process/sandbox/locateAgent.js';
import type { Pid } from './processes.js';

/** The PID namespace a host process lives in (`pid:[4026…]`), or undefined when it is gone. */
export function pidNamespace(pid: number): string | undefined {
  try {
    return readlinkSync(`/proc/${pid}/ns/pid`);
  } catch {
    return undefined;
  }
}

/** Every live host process in the same PID namespace as `pid` (the whole sandbox, whatever it forked). */
export function namespaceMembers(pid: number): Pid[] {
  const ns = pidNamespace(pid);
  if (!ns || ns === pidNamespace(process.pid)) return [];
  const out: Pid[] = [];
  for (const p of scanProcesses()) {
    if (p.state !== 'Z' && pidNamespace(p.pid) === ns) out.push({ pid: p.pid, startTime: p.startTime });
  }
  return out;
}

/** comm of a host pid ('' when gone). */
export function commOf(pid: number): string {
  return readProc(pid)?.comm ?? '';
}

/**
 * The host pids of pids an agent reported about itself ("spawned setsid 17"). Inside a sandbox those numbers are
 * pids of its own namespace: each is mapped to the host process with that innermost pid in the namespace of any of
 * `tree` (the session's processes on the host). Unsandboxed they are host pids already. Numbers that name no
 * process are dropped, so a test never claims (or kills) an unrelated host process.
 */
export function reportedHostPids(numbers: readonly number[], tree: readonly number[]): Pid[] {
  const ours = pidNamespace(process.pid);
  const ns = tree.map(pidNamespace).find((n) => n !== undefined && n !== ours);
  if (!ns) return identifyLive(numbers);
  const byInner = new Map<number, Pid>();
  for (const p of scanProcesses()) {
    if (p.state === 'Z' || pidNamespace(p.pid) !== ns) continue;
    const inner = innermostPid(p.pid);
    if (inner !== undefined) byInner.set(inner, { pid: p.pid, startTime: p.startTime });
  }
  return numbers.flatMap((n) => {
    const p = byInner.get(n);
    return p ? [p] : [];
  });
}

function identifyLive(pids: readonly number[]): Pid[] {
  return pids.flatMap((pid) => {
    const info = readProc(pid);
    return info && info.state !== 'Z' ? [{ pid, startTime: info.startTime }] : [];
  });
}
