import { afterEach, describe, expect, it, vi } from 'vitest';
import { PoolHarness, threadId } from './helpers/harness.js';
import { alive, expectAllGone, identify, killAll, type Pid, treeOf } from './helpers/processes.js';

// The session reads its root's start time once, right after the spawn. `hideNext` makes that one read fail, as it
// does when /proc cannot be read at that instant: the session then knows the pid but not its start time.
const probe = vi.hoisted(() => ({ hideNext: false }));
vi.mock('../src/process/procfs.js', async (importOriginal) => {
  const real = await importOriginal<typeof import('../src/process/procfs.js')>();
  return {
    ...real,
    readProc: (pid: number) => {
      if (probe.hideNext) {
        probe.hideNext = false;
        return undefined;
      }
      return real.readProc(pid);
    },
  };
});

let h: PoolHarness | undefined;
const seen: Pid[] = [];
afterEach(async () => {
  await h?.dispose();
  expect(alive(seen)).toEqual([]);
  await killAll(seen);
  seen.length = 0;
  h = undefined;
});

describe('a session whose root start time is unknown', () => {
  it('still kills every marked process of its tree, setsid escapers included', async () => {
    // Unsandboxed: in a sandbox the agent's start time is read while it is being located, which retries until
    // the read succeeds, so only the plain spawn can be left without one.
    h = new PoolHarness({ killGraceMs: 300 }, { spawnWrapper: undefined, sandboxStatus: undefined });
    probe.hideNext = true;
    const s = await h.pool.acquire(threadId());
    await s.ready;
    expect(s.pidStartTime).toBeUndefined();
    const reply = await s.prompt('fake:spawn setsid');
    expect(reply.text).toMatch(/spawned setsid \d+/);
    const tree = identify(treeOf(s.pid!, s.marker).map((p) => p.pid));
    seen.push(...tree);
    // The wrapper, the chat and the escaper in its own session.
    expect(tree.length).toBeGreaterThanOrEqual(3);
    const result = await s.close('reset');
    expect(result.kill.pids).toEqual(expect.arrayContaining(tree.map((p) => p.pid)));
    await expectAllGone(tree, 1000);
  });
});
