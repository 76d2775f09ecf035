import { readProc } from './procfs.js';

/**
 * The marker every agent process carries in THREADWARDEN_MARKER: `tw1:<ownerPid>:<ownerStart>:<instanceId>:<sessionId>`.
 * The owner's pid and start time tell a reaper whether the bot that spawned the process is still alive.
 */
export interface Marker {
  readonly ownerPid: number;
  readonly ownerStart: number;
  readonly instanceId: string;
  readonly sessionId: string;
}

export function formatMarker(m: Marker): string {
  return `tw1:${m.ownerPid}:${m.ownerStart}:${m.instanceId}:${m.sessionId}`;
}

export function parseMarker(value: string): Marker | undefined {
  const parts = value.split(':');
  if (parts.length !== 5 || parts[0] !== 'tw1') return undefined;
  const ownerPid = Number(parts[1]);
  const ownerStart = Number(parts[2]);
  if (!Number.isInteger(ownerPid) || !Number.isInteger(ownerStart)) return undefined;
  return { ownerPid, ownerStart, instanceId: parts[3]!, sessionId: parts[4]! };
}

/** Identity of this process as an owner: pid and start time from /proc. */
export function selfIdentity(): { pid: number; startTime: number } {
  const info = readProc(process.pid);
  if (!info) throw new Error('cannot read /proc/self/stat: threadwarden needs Linux /proc');
  return { pid: process.pid, startTime: info.startTime };
}
