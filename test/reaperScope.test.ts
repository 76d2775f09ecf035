import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isDemoInstance } from '../src/demo/demoInstance.js';
import { silentLogger } from '../src/log/logger.js';
import { reapOrphans } from '../src/pool/Reaper.js';
import { ProcessTable } from '../src/process/ProcessTable.js';
import { readMarker, scanProcesses } from '../src/process/procfs.js';
import { Store } from '../src/store/Store.js';
import { alive, expectAllGone, identify, killAll, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

const CLI = join(import.meta.dirname, '../dist/src/cli.js');
let dir: string;
const started: Pid[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tw-reapscope-'));
});
afterEach(async () => {
  await killAll(started);
  started.length = 0;
  rmSync(dir, { recursive: true, force: true });
});

/** A marker whose owner is dead: this test process's pid with a start time it never had. */
const deadOwnerMarker = (instanceId: string, sessionId: string) =>
  `tw1:${process.pid}:1:${instanceId}:${sessionId}`;

/** A long-lived process of this test, optionally carrying THREADWARDEN_MARKER in its real environment. */
function sleeper(env: Record<string, string> = {}): Pid {
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1e9)'], {
    env: { PATH: process.env.PATH, ...env },
    stdio: 'ignore',
    detached: true,
  });
  child.unref();
  const [pid] = identify([child.pid!]);
  if (!pid) throw new Error('sleeper did not start');
  started.push(pid);
  return pid;
}

describe('a scoped start-up reaper', () => {
  it('ends only the orphans and open rows of instances in its scope; another instance keeps both', async () => {
    // The markers live in this table only (not in the processes' environments), so no other reaper on the host
    // can see them: the foreign orphan survives only if the scope spares it.
    const demoOrphan = sleeper();
    const foreignOrphan = sleeper();
    const demoMarker = deadOwnerMarker('demo-earlier', 's-demo');
    const foreignMarker = deadOwnerMarker('prod-instance', 's-prod');
    const fake = new Map([
      [demoOrphan.pid, demoMarker],
      [foreignOrphan.pid, foreignMarker],
    ]);
    const table = new ProcessTable({ readMarker: (pid) => fake.get(pid) ?? readMarker(pid) });
    const store = new Store(join(dir, 'tw.db'), { logger: silentLogger() });
    try {
      for (const [id, marker, instanceId] of [
        ['s-demo', demoMarker, 'demo-earlier'],
        ['s-prod', foreignMarker, 'prod-instance'],
      ] as const) {
        store.insertSession({
          id,
          threadId: `t-${id}`,
          channelId: undefined,
          userId: undefined,
          instanceId,
          marker,
          cwd: dir,
          command: ['sleeper'],
          startedAt: Date.now(),
        });
      }
      store.flush();

      const result = await reapOrphans({
        table,
        logger: silentLogger(),
        graceMs: 300,
        store,
        owns: isDemoInstance,
      });
      console.log('scoped reap:', JSON.stringify(result.sessions.map((s) => [s.instanceId, s.pids])));

      expect(result.sessions.map((s) => s.instanceId)).toEqual(['demo-earlier']);
      expect(result.sessions[0]!.pids).toEqual([demoOrphan.pid]);
      expect(result.rowsClosed).toBe(1);
      await expectAllGone([demoOrphan], 2000);
      expect(alive([foreignOrphan])).toEqual([foreignOrphan]);
      store.flush();
      expect(store.openSessions().map((r) => r.id)).toEqual(['s-prod']);
      expect(store.history().find((r) => r.id === 's-demo')?.endReason).toBe('bot_restart');
    } finally {
      store.close();
    }
    await killAll([foreignOrphan]);
    await expectAllGone([foreignOrphan], 2000);
  });

  it("never touches a process of another pid namespace (a container's agents): its marker's pids are not ours", async () => {
    // bwrap --unshare-pid: the sleeper runs in a new pid namespace, as an agent in a container does, and carries a
    // marker whose owner is dead from here. The table sees it through our /proc, the marker only in this table.
    const child = spawn(
      'bwrap',
      [
        '--unshare-pid',
        '--die-with-parent',
        '--dev-bind',
        '/',
        '/',
        process.execPath,
        '-e',
        'setInterval(() => {}, 1e9)',
      ],
      { stdio: 'ignore' },
    );
    const outer = identify([child.pid!]);
    started.push(...outer);
    const inner = await waitFor(() => {
      // bwrap → bwrap (pid 1 of the new namespace) → node.
      const procs = scanProcesses();
      const nsInit = procs.filter((p) => p.ppid === child.pid).map((p) => p.pid);
      return identify(procs.filter((p) => nsInit.includes(p.ppid) && p.comm === 'node').map((p) => p.pid))[0];
    }, 'the sleeper inside the new pid namespace');
    started.push(inner);
    const marker = deadOwnerMarker('container-instance', 's-ns');
    const table = new ProcessTable({ readMarker: (pid) => (pid === inner.pid ? marker : readMarker(pid)) });
    const result = await reapOrphans({ table, logger: silentLogger(), graceMs: 300 });
    console.log(
      'reap across namespaces:',
      JSON.stringify(result.sessions.map((s) => [s.instanceId, s.pids])),
    );
    expect(result.sessions.filter((s) => s.instanceId === 'container-instance')).toEqual([]);
    expect(alive([inner])).toEqual([inner]);
    await killAll([...outer, inner]);
    await expectAllGone([...outer, inner], 2000);
  });

  it('`threadwarden demo` ends what an earlier, killed demo run left behind and exits 0', async () => {
    const leftover = sleeper({ THREADWARDEN_MARKER: deadOwnerMarker('demo-killedrun', 's1') });
    const demo = spawnSync(process.execPath, [CLI, 'demo'], {
      env: { PATH: process.env.PATH },
      encoding: 'utf8',
      timeout: 60_000,
    });
    console.log(demo.stdout.split('\n').find((l) => l.includes('start-up reaper')));
    expect(demo.status, demo.stderr).toBe(0);
    expect(demo.stdout).toMatch(
      /start-up reaper \(earlier demo runs only\): 1 leftover session\(s\), 1 process\(es\) ended/,
    );
    await expectAllGone([leftover], 2000);
  }, 90_000);
});
