import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import * as pty from 'node-pty';
import { afterEach, describe, expect, it } from 'vitest';
import { killTree } from '../src/process/killTree.js';
import { type MarkedProc, ProcessTable, treeMembers } from '../src/process/ProcessTable.js';
import { MARKER_VAR, readProc } from '../src/process/procfs.js';
import { expectAllGone, identify, killAll, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

const TREE = join(import.meta.dirname, 'fixtures/trees/tree.sh');

interface Spawned {
  readonly term: pty.IPty;
  readonly marker: string;
  readonly pids: Pid[];
  readonly startTime: number;
}

const started: Pid[] = [];

async function spawnTree(ignoreTerm: boolean): Promise<Spawned> {
  const marker = `tw1:0:0:test:${randomUUID()}`;
  const term = pty.spawn(TREE, [], {
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      [MARKER_VAR]: marker,
      TREE_IGNORE_TERM: ignoreTerm ? '1' : '0',
    },
    cwd: import.meta.dirname,
  });
  let out = '';
  term.onData((d) => {
    out += d;
  });
  await waitFor(() => out.includes('TREE-READY'), 'the tree to start');
  const listed = /PIDS ([\d ]+)/.exec(out)![1]!.trim().split(/\s+/).map(Number);
  expect(listed.length).toBe(ignoreTerm ? 6 : 5);
  // The sleepers exec after fork: wait until each one is `sleep` (python3 and env exec into it).
  const pids = await waitFor(() => {
    const ok = listed.slice(1).every((pid) => readProc(pid)?.comm === 'sleep');
    return ok ? identify(listed) : undefined;
  }, 'every process of the tree to start');
  expect(pids.length).toBe(listed.length);
  started.push(...pids);
  return { term, marker, pids, startTime: readProc(term.pid)!.startTime };
}

afterEach(async () => {
  await killAll(started);
  started.length = 0;
});

describe('killTree on real processes', () => {
  it('kills a cooperative tree with SIGTERM, including setsid escapers, own-group and double-forked children', async () => {
    const t = await spawnTree(false);
    const table = new ProcessTable();
    const members = treeMembers(table.scan(), { pid: t.term.pid, startTime: t.startTime, marker: t.marker });
    const sleepers = members.filter((m) => m.comm === 'sleep').map((m) => m.pid);
    expect(sleepers.sort()).toEqual(
      t.pids
        .slice(1)
        .map((p) => p.pid)
        .sort(),
    );
    const result = await killTree(
      { pid: t.term.pid, startTime: t.startTime, marker: t.marker },
      { graceMs: 1500, table },
    );
    expect(result.forced).toBe(false);
    expect(result.signal).toBe('SIGTERM');
    expect(result.survivors).toEqual([]);
    expect(result.pids).toEqual(expect.arrayContaining(sleepers));
    await expectAllGone(t.pids, 100);
  });

  it('escalates to SIGKILL after the grace period for a child that ignores SIGTERM', async () => {
    const t = await spawnTree(true);
    const table = new ProcessTable();
    const result = await killTree(
      { pid: t.term.pid, startTime: t.startTime, marker: t.marker },
      { graceMs: 300, table },
    );
    expect(result.forced).toBe(true);
    expect(result.signal).toBe('SIGKILL');
    expect(result.durationMs).toBeGreaterThanOrEqual(300);
    expect(result.survivors).toEqual([]);
    await expectAllGone(t.pids, 100);
  });

  it('does nothing and says so when the tree is already gone, and never signals a reused pid', async () => {
    const t = await spawnTree(false);
    const table = new ProcessTable();
    const target = { pid: t.term.pid, startTime: t.startTime, marker: t.marker };
    await killTree(target, { graceMs: 500, table });
    const again = await killTree(target, { graceMs: 500, table });
    expect(again).toMatchObject({ signal: 'none', forced: false, pids: [] });
  });
});

describe('treeMembers', () => {
  const proc = (pid: number, over: Partial<MarkedProc>): MarkedProc => ({
    pid,
    ppid: 1,
    pgid: pid,
    sid: pid,
    state: 'S',
    startTime: 100,
    comm: 'x',
    cpuTicks: 0,
    rssPages: 0,
    marker: undefined,
    ...over,
  });

  it('ignores the group and session of a leader whose pid now belongs to another process', () => {
    const procs = [proc(500, { startTime: 999 }), proc(501, { pgid: 500, sid: 500, ppid: 500 })];
    expect(treeMembers(procs, { pid: 500, startTime: 100, marker: 'm' }, 1)).toEqual([]);
  });

  it('finds marker carriers, session members, group members and their descendants, never pid 1', () => {
    const procs = [
      proc(1, { marker: 'm' }),
      proc(500, {}),
      proc(600, { marker: 'm' }),
      proc(601, { ppid: 600 }),
      proc(700, { sid: 500, pgid: 700 }),
      proc(800, {}),
    ];
    const found = treeMembers(procs, { pid: 500, startTime: 100, marker: 'm' }, 2).map((p) => p.pid);
    expect(found.sort()).toEqual([500, 600, 601, 700]);
  });
});
