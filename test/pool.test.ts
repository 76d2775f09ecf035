import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentSession } from '../src/agent/AgentSession.js';
import type { EndReason } from '../src/endReasons.js';
import { PoolFullError } from '../src/errors.js';
import { silentLogger } from '../src/log/logger.js';
import { reapOrphans } from '../src/pool/Reaper.js';
import { PoolHarness, threadId } from './helpers/harness.js';
import { reportedHostPids } from './helpers/namespace.js';
import { killedOwnerPids } from './helpers/owner.js';
import { alive, expectAllGone, identify, killAll, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

let h: PoolHarness | undefined;
const extra: Pid[] = [];
afterEach(async () => {
  const seen = [...(h?.seen ?? []), ...extra];
  await h?.dispose();
  expect(alive(seen)).toEqual([]);
  await killAll(seen);
  extra.length = 0;
  h = undefined;
});

/** Host pids of the pids the fake reports ("spawned setsid 17"); inside a sandbox those are its namespace's. */
function reportedPids(text: string, s: AgentSession): Pid[] {
  const tree = h!.tree(s).map((p) => p.pid);
  return reportedHostPids((text.match(/\b\d{1,7}\b/g) ?? []).map(Number), tree);
}

/** Makes the session's tree as hard to kill as kiro-cli's worst case; returns every pid of it. */
async function hostileTree(pool: PoolHarness, s: AgentSession): Promise<Pid[]> {
  const reported: Pid[] = [];
  for (const what of ['setsid', 'group', 'doublefork', 'ignoreterm']) {
    reported.push(...reportedPids((await s.prompt(`fake:spawn ${what}`)).text, s));
  }
  await s.prompt('fake:ignore-term');
  const tree = [...pool.tree(s), ...reported];
  expect(reported.length).toBeGreaterThanOrEqual(4);
  expect(tree.length).toBeGreaterThanOrEqual(6);
  return tree;
}

describe('SessionPool lifecycle: every end path kills the whole tree and records why', () => {
  it.each<[EndReason, 'archived' | 'deleted' | 'reset']>([
    ['archived', 'archived'],
    ['deleted', 'deleted'],
    ['reset', 'reset'],
  ])(
    'close(%s) kills setsid escapers, own-group, double-forked children and SIGTERM ignorers',
    async (reason) => {
      h = new PoolHarness();
      const id = threadId();
      const s = await h.pool.acquire(id);
      const tree = await hostileTree(h, s);
      const t0 = performance.now();
      const result = await h.pool.close(id, reason);
      expect(result?.reason).toBe(reason);
      expect(result?.kill.forced).toBe(true);
      await expectAllGone(tree, 1000);
      expect(performance.now() - t0).toBeLessThan(500 + 1000 + 1000);
      const row = h.row(s.id)!;
      expect(row.endReason).toBe(reason);
      expect(row.forced).toBe(1);
      expect(JSON.parse(row.pidsKilled!)).toEqual(expect.arrayContaining(tree.map((p) => p.pid)));
      expect(h.pool.get(id)).toBeUndefined();
    },
  );

  it('close is idempotent: every call returns the first result', async () => {
    h = new PoolHarness();
    const id = threadId();
    const s = await h.pool.acquire(id);
    await s.ready;
    const [a, b] = await Promise.all([s.close('reset'), s.close('archived')]);
    expect(a).toBe(b);
    expect(a.reason).toBe('reset');
    expect(await h.pool.close(id, 'deleted')).toBeUndefined();
    expect(h.row(s.id)!.endReason).toBe('reset');
  });

  it('sweeps idle sessions after the TTL (idle_ttl) but not busy ones', async () => {
    h = new PoolHarness({ sessionIdleTtlMs: 600 });
    const idle = await h.pool.acquire(threadId());
    const busy = await h.pool.acquire(threadId());
    await Promise.all([idle.ready, busy.ready]);
    const idleTree = [...h.tree(idle), ...reportedPids((await idle.prompt('fake:spawn setsid')).text, idle)];
    const hanging = busy.prompt('fake:silent 2500');
    await waitFor(() => idle.state === 'closed', 'the idle session to be swept', 5000);
    await expectAllGone(idleTree);
    expect(h.row(idle.id)!.endReason).toBe('idle_ttl');
    expect(busy.state).toBe('busy');
    expect((await hanging).text).toBe('done');
  });

  it('evicts the least recently active idle session at capacity and never a busy one', async () => {
    h = new PoolHarness({ maxSessions: 2 });
    const a = await h.pool.acquire(threadId());
    const b = await h.pool.acquire(threadId());
    await Promise.all([a.ready, b.ready]);
    const busyTurn = a.prompt('fake:silent 3000'); // a is older but busy
    await waitFor(() => a.state === 'busy', 'a to be busy');
    const bTree = h.tree(b);
    const c = await h.pool.acquire(threadId());
    expect(b.state).toBe('closed');
    await expectAllGone(bTree);
    expect(h.row(b.id)!.endReason).toBe('evicted');
    expect(a.state).toBe('busy');
    // Now a and c: c starting counts as not idle, a busy: the pool is full.
    const full = await h.pool.acquire(threadId()).catch((e: unknown) => e);
    expect(full).toBeInstanceOf(PoolFullError);
    expect((full as PoolFullError).retryAfterMs).toBeGreaterThan(0);
    expect((full as PoolFullError).message).toMatch(/All 2 agent sessions are busy/);
    expect((await busyTurn).text).toBe('done');
    await c.ready;
    expect(h.pool.size).toBe(2);
  });

  it('closeAll("shutdown") ends every session in parallel', async () => {
    h = new PoolHarness({ killGraceMs: 800 });
    const sessions = await Promise.all([1, 2, 3].map(() => h!.pool.acquire(threadId())));
    const trees: Pid[] = [];
    for (const s of sessions) trees.push(...(await hostileTree(h, s)));
    const t0 = performance.now();
    const results = await h.pool.closeAll('shutdown');
    const ms = performance.now() - t0;
    expect(results.map((r) => r.reason)).toEqual(['shutdown', 'shutdown', 'shutdown']);
    await expectAllGone(trees, 1000);
    // Parallel: three forced kills take about one grace period, not three.
    expect(ms).toBeLessThan(800 * 3);
    for (const s of sessions) expect(h.row(s.id)!.endReason).toBe('shutdown');
    await expect(h.pool.acquire(threadId())).rejects.toThrow(/shutting down/);
  });

  it('after the owner is SIGKILLed, the reaper kills its orphans and closes its rows as bot_restart', async () => {
    h = new PoolHarness();
    const dbPath = join(h.root, 'owner.db');
    // The pids are identified before the kill, so a pid reused later is never mistaken for an orphan.
    const owned = await killedOwnerPids(dbPath, join(h.root, 'owner-ws'), 3);
    const orphans = identify(owned);
    extra.push(...orphans);
    expect(owned.length).toBeGreaterThanOrEqual(9);
    expect(alive(orphans).length).toBeGreaterThan(0);

    const { Store } = await import('../src/store/Store.js');
    const store = new Store(dbPath, { logger: silentLogger() });
    // Only the killed owner's markers: other test runs on a shared machine may have orphans of their own.
    const ownerInstances = new Set(store.openSessions().map((r) => r.instanceId));
    expect(ownerInstances.size).toBe(1);
    const owns = (m: { instanceId: string }) => ownerInstances.has(m.instanceId);
    try {
      const dry = await reapOrphans({
        table: h.table,
        logger: silentLogger(),
        graceMs: 300,
        store,
        dryRun: true,
        owns,
      });
      expect(dry.sessions.length).toBe(3);
      expect(alive(orphans).length).toBeGreaterThan(0);
      const result = await reapOrphans({ table: h.table, logger: silentLogger(), graceMs: 300, store, owns });
      expect(result.rowsClosed).toBe(3);
      await expectAllGone(orphans, 1000);
      expect(store.history().map((r) => r.endReason)).toEqual(['bot_restart', 'bot_restart', 'bot_restart']);
      expect(store.openSessions()).toEqual([]);
    } finally {
      store.close();
    }
  }, 60_000);

  it('never touches the sessions of a live owner', async () => {
    h = new PoolHarness();
    const s = await h.pool.acquire(threadId());
    await s.ready;
    const tree = h.tree(s);
    const instanceId = h.pool.instanceId;
    const result = await reapOrphans({
      table: h.table,
      logger: silentLogger(),
      graceMs: 300,
      store: h.store,
      // Only this pool's markers: other test runs on a shared machine may leave orphans of dead owners meanwhile,
      // which a machine-wide reap would (rightly) end, and this test must neither see nor kill them.
      owns: (m) => m.instanceId === instanceId,
    });
    expect(result.sessions).toEqual([]);
    expect(result.rowsClosed).toBe(0);
    expect(alive(tree).length).toBe(tree.length);
    expect(s.state).toBe('idle');
  });
});
