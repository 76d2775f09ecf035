import { afterEach, describe, expect, it } from 'vitest';
import type { AgentSession } from '../src/agent/AgentSession.js';
import { PoolFullError, SessionClosedError } from '../src/errors.js';
import { treeMembers } from '../src/process/ProcessTable.js';
import { PoolHarness, threadId } from './helpers/harness.js';
import { alive, expectAllGone, killAll, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

let h: PoolHarness | undefined;
afterEach(async () => {
  const seen = h?.seen ?? [];
  await h?.dispose();
  expect(alive(seen)).toEqual([]);
  await killAll(seen);
  h = undefined;
});

/** Sessions whose tree has at least one live process right now, read from one /proc scan. */
function treesAlive(pool: PoolHarness, sessions: readonly AgentSession[]): AgentSession[] {
  const procs = pool.table.scan(pool.table.timestamp());
  return sessions.filter((s) =>
    treeMembers(procs, {
      pid: s.pidStartTime === undefined ? 0 : (s.pid ?? 0),
      startTime: s.pidStartTime ?? -1,
      marker: s.marker,
    }).some((p) => p.state !== 'Z' && p.state !== 'X'),
  );
}

describe('SessionPool capacity is one atomic decision', () => {
  it('50 concurrent acquires at capacity never have more than MAX trees alive and end no busy session', async () => {
    const max = 4;
    h = new PoolHarness({ maxSessions: max, killGraceMs: 300 });
    const pool = h;
    const started: AgentSession[] = [];
    let peak = 0;
    // A tree appears only when a session spawns: counting live trees at every spawn sees the worst instant.
    pool.pool.on('sessionStart', (s) => {
      started.push(s);
      peak = Math.max(peak, treesAlive(pool, started).length);
    });
    const first = await Promise.all(Array.from({ length: max }, () => pool.pool.acquire(threadId())));
    await Promise.all(first.map((s) => s.ready));
    for (const s of first) h.tree(s);
    const [busy1, busy2, idle1, idle2] = first as [AgentSession, AgentSession, AgentSession, AgentSession];
    const turns = [busy1.prompt('fake:silent 2500'), busy2.prompt('fake:silent 2500')];
    await waitFor(() => busy1.state === 'busy' && busy2.state === 'busy', 'two busy sessions');

    // Sampling the process table between spawns as well, while the 50 run.
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        peak = Math.max(peak, treesAlive(pool, started).length);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    const outcomes = await Promise.allSettled(
      Array.from({ length: 50 }, () => pool.pool.acquire(threadId())),
    );
    const got = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value] : []));
    const refused = outcomes.filter((o) => o.status === 'rejected');
    await Promise.all(got.map((s) => s.ready));
    for (const s of got) h.tree(s);
    sampling = false;
    await sampler;

    expect(peak).toBeLessThanOrEqual(max);
    // The two idle sessions made room for exactly two newcomers; the rest were told the pool is full.
    expect(got.length).toBe(2);
    expect(refused.length).toBe(48);
    for (const r of refused) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(PoolFullError);
    expect(idle1.closeReason).toBe('evicted');
    expect(idle2.closeReason).toBe('evicted');
    expect(busy1.state).toBe('busy');
    expect(busy2.state).toBe('busy');
    expect((await Promise.all(turns)).map((t) => t.text)).toEqual(['done', 'done']);
    expect(pool.pool.endedCounts()).toEqual({ evicted: 2 });
    expect(pool.pool.size).toBe(max);
  }, 60_000);

  it('a start still waiting for its slot is cancelled by closing its thread: no agent is spawned', async () => {
    h = new PoolHarness({ maxSessions: 1, killGraceMs: 500 });
    const idle = await h.pool.acquire(threadId());
    await idle.ready;
    await idle.prompt('fake:ignore-term'); // its teardown takes the whole grace period
    const tree = h.tree(idle);
    const spawned: string[] = [];
    h.pool.on('sessionStart', (s) => spawned.push(s.threadId));
    const late = threadId();
    const acquiring = h.pool.acquire(late).catch((e: unknown) => e);
    // The eviction of `idle` is under way; the thread is archived before its agent could start.
    expect(idle.state).toBe('closing');
    expect(await h.pool.close(late, 'archived')).toBeUndefined();
    const err = await acquiring;
    expect(err).toBeInstanceOf(SessionClosedError);
    expect((err as SessionClosedError).reason).toBe('archived');
    expect(spawned).toEqual([]);
    await expectAllGone(tree);
    expect(h.pool.size).toBe(0);
  });
});

describe("a thread's next agent starts only after its previous tree is gone", () => {
  async function previousTreeAtNextSpawn(
    end: (pool: PoolHarness, s: AgentSession, id: string) => void,
  ): Promise<{ leftAtSpawn: Pid[]; tree: Pid[]; next: AgentSession }> {
    h = new PoolHarness({ killGraceMs: 500 });
    const pool = h;
    const id = threadId();
    const s = await pool.pool.acquire(id);
    await s.ready;
    await s.prompt('fake:spawn setsid');
    await s.prompt('fake:ignore-term'); // the chat outlives SIGTERM: the kill takes the grace period
    const tree = pool.tree(s);
    let leftAtSpawn: Pid[] | undefined;
    pool.pool.on('sessionStart', (n) => {
      if (n.threadId === id) leftAtSpawn = alive(tree);
    });
    end(pool, s, id);
    const next = await pool.pool.acquire(id);
    await next.ready;
    pool.tree(next);
    return { leftAtSpawn: leftAtSpawn ?? [{ pid: -1, startTime: -1 }], tree, next };
  }

  it('after /reset the next acquire waits for the old tree, SIGTERM ignorers included', async () => {
    const { leftAtSpawn, tree, next } = await previousTreeAtNextSpawn((pool, _s, id) => {
      void pool.pool.close(id, 'reset');
    });
    expect(tree.length).toBeGreaterThanOrEqual(3);
    expect(leftAtSpawn).toEqual([]);
    expect(next.state).toBe('idle');
  });

  it('a session closing by itself (a limit, a crash) is never handed out; its successor waits for its tree', async () => {
    let handedOut: AgentSession | undefined;
    const { leftAtSpawn, next } = await previousTreeAtNextSpawn((pool, s, id) => {
      // The moment it starts closing by itself, a message arrives for the thread.
      s.once('state', () => {
        void pool.pool.acquire(id).then((n) => {
          handedOut = n;
        });
      });
      void s.close('cpu_limit');
    });
    expect(leftAtSpawn).toEqual([]);
    expect(handedOut).toBe(next);
    expect(next.state).toBe('idle');
  });

  it('after a crash, a message queued behind the crashed turn is rejected as undelivered and reaches the next session', async () => {
    h = new PoolHarness();
    const id = threadId();
    const s = await h.pool.acquire(id);
    await s.ready;
    const crashing = s.prompt('fake:crash').catch((e: unknown) => e);
    const queued = s.prompt('hello after the crash').catch((e: unknown) => e);
    let handedOut: AgentSession | undefined;
    s.once('state', (state) => {
      expect(state).toBe('closing');
      // Asked while the crashed session is closing: never the dying one.
      void h!.pool.acquire(id).then((n) => {
        handedOut = n;
      });
    });
    const crashErr = (await crashing) as SessionClosedError;
    const queuedErr = (await queued) as SessionClosedError;
    expect(crashErr).toBeInstanceOf(SessionClosedError);
    expect(crashErr.reason).toBe('crashed');
    expect(crashErr.delivered).toBe(true);
    expect(queuedErr).toBeInstanceOf(SessionClosedError);
    expect(queuedErr.delivered).toBe(false);
    const next = await waitFor(() => handedOut, 'the next session');
    expect(next).not.toBe(s);
    expect((await next.prompt('hello after the crash')).text).toBe('You said: hello after the crash');
    expect(h.row(s.id)!.endReason).toBe('crashed');
  });
});
