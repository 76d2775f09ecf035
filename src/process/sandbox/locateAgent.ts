import { readFileSync } from 'node:fs';
import { isAlive, readProc } from '../procfs.js';

export interface HostPid {
  readonly pid: number;
  readonly startTime: number;
}

/** What one bwrap spawn is on the host: the agent itself and the two bwrap processes around it. */
export interface SandboxedPids {
  /** The agent (pid 2 of the sandbox's PID namespace), by host pid and start time. */
  readonly agent: HostPid;
  /** bwrap's outer process (the spawned child) and the namespace's init (pid 1), outermost first. */
  readonly infra: readonly HostPid[];
}

function children(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return text === '' ? [] : text.split(' ').map(Number);
  } catch {
    return [];
  }
}

/** The pid a process has in its own (innermost) PID namespace, from the NSpid line of /proc/<pid>/status. */
export function innermostPid(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const line = status.split('\n').find((l) => l.startsWith('NSpid:'));
    const ids = line?.slice(6).trim().split(/\s+/).map(Number);
    return ids?.[ids.length - 1];
  } catch {
    return undefined;
  }
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/**
 * Finds the agent bwrap started: outer bwrap → init (namespace pid 1) → agent (namespace pid 2). Waits synchronously
 * (1 ms steps, at most `capMs`) because the agent appears a few milliseconds after the spawn returns, once bwrap has
 * built the filesystem view, and the spawn path reports the pid synchronously. Returns undefined when the outer
 * process exits first (bwrap failed; its exit status follows) or the cap passes.
 */
export function locateAgentSync(outerPid: number, capMs = 5000): SandboxedPids | undefined {
  const outer = readProc(outerPid);
  if (!outer) return undefined;
  const deadline = performance.now() + capMs;
  for (;;) {
    const init = children(outerPid)[0];
    if (init !== undefined) {
      for (const pid of children(init)) {
        if (innermostPid(pid) !== 2) continue;
        const agent = readProc(pid);
        const initInfo = readProc(init);
        if (agent && initInfo)
          return {
            agent: { pid, startTime: agent.startTime },
            infra: [
              { pid: outerPid, startTime: outer.startTime },
              { pid: init, startTime: initInfo.startTime },
            ],
          };
      }
    }
    if (!isAlive(outerPid, outer.startTime) || performance.now() > deadline) return undefined;
    Atomics.wait(sleeper, 0, 0, 1);
  }
}
