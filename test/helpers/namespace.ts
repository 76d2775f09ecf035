import { readlinkSync } from 'node:fs';
import { readProc, scanProcesses } from '../../src/process/procfs.js';
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
