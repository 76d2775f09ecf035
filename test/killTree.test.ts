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
  // The owner is this test process, alive: a reaper running elsewhere on the machine (another test's `reap`) must
  // leave the tree alone, as it leaves a live bot's agents alone.
  const marker = `tw1:${process.pid}:${readProc(process.pid)!.startTime}:test:${randomUUID()}`;
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
  // Starting six processes (sh, python3, env, sleep) can take seconds on a loaded 2-core machine.
  await waitFor(() => out.includes('TREE-READY'), 'the tree to start', 20_000);
  const listed = /PIDS ([\d ]+)/.exec(out)![1]!.trim().split(/\s+/).map(Number);
  expect(listed.length).toBe(ignoreTerm ? 6 : 5);
  // The sleepers exec after fork: wait until each one is `sleep` (python3 and env exec into it).
  const pids = await waitFor(
    () => {
      const ok = listed.slice(1).every((pid) => readProc(pid)?.comm === 'sleep');
      return ok ? identify(listed) : undefined;
    },
    'every process of the tree to start',
    20_000,
  );
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

  it('once the leader is gone, a daemon that reused its pid (setsid) and forked is not claimed by group or session', () => {
    // Our leader 500 (start 100) has exited; pid 500 was reused by a daemon that called setsid, forked 501 and
    // exited: 501 has pgid = sid = 500 but is none of ours. Our chat 600 keeps the marker, its child 601 lost it.
    const procs = [
      proc(501, { pgid: 500, sid: 500, ppid: 1, startTime: 5000 }),
      proc(600, { pgid: 500, sid: 500, ppid: 1, marker: 'm' }),
      proc(601, { pgid: 500, sid: 500, ppid: 600 }),
    ];
    const found = treeMembers(procs, { pid: 500, startTime: 100, marker: 'm' }, 2).map((p) => p.pid);
    expect(found.sort()).toEqual([600, 601]);
  });

  it('claims the descendants of a process verified earlier by pid and start time, and nothing of a reused pid', () => {
    const procs = [proc(700, { startTime: 300 }), proc(701, { ppid: 700 }), proc(800, { startTime: 9 })];
    const roots = [
      { pid: 700, startTime: 300 },
      { pid: 800, startTime: 8 }, // reused: other start time
    ];
    const found = treeMembers(procs, { pid: 500, startTime: 100, marker: 'm' }, 2, roots).map((p) => p.pid);
    expect(found.sort()).toEqual([700, 701]);
  });
});

describe("killTree never signals a process that only shares a dead root's numbers", () => {
  it('signals the marker carrier and its child, never the reused pid nor its group (-pid)', async () => {
    const proc = (pid: number, over: Partial<MarkedProc>): MarkedProc => ({
      pid,
      ppid: 1,
      pgid: 500,
      sid: 500,
      state: 'S',
      startTime: 100,
      comm: 'x',
      cpuTicks: 0,
      rssPages: 0,
      marker: undefined,
      ...over,
    });
    let procs: MarkedProc[] = [
      proc(501, { startTime: 5000 }), // a stranger's daemon in the reused group
      proc(600, { marker: 'm' }),
      proc(601, { ppid: 600 }),
    ];
    const sent: [number, NodeJS.Signals][] = [];
    const table = new ProcessTable({
      scan: () => procs,
      readMarker: (pid) => procs.find((p) => p.pid === pid)?.marker,
    });
    const result = await killTree(
      { pid: 500, startTime: 100, marker: 'm' },
      {
        graceMs: 0,
        table,
        killWaitMs: 0,
        signal: (pid, sig) => {
          sent.push([pid, sig]);
          // Ours die on SIGTERM; the scan then shows only the stranger.
          procs = procs.filter((p) => p.pid !== pid);
        },
        isAlive: (pid, start) => procs.some((p) => p.pid === pid && p.startTime === start),
      },
    );
    expect(sent).toEqual([
      [600, 'SIGTERM'],
      [601, 'SIGTERM'],
    ]);
    expect(result.pids).toEqual([600, 601]);
    expect(procs.map((p) => p.pid)).toEqual([501]);
  });
});
