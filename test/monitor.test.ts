import { afterEach, describe, expect, it } from 'vitest';
import type { EndReason } from '../src/endReasons.js';
import { silentLogger } from '../src/log/logger.js';
import { type MonitorConfig, ResourceMonitor } from '../src/monitor/ResourceMonitor.js';
import { PoolHarness, threadId } from './helpers/harness.js';
import { reportedHostPids } from './helpers/namespace.js';
import { alive, expectAllGone, killAll, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

let h: PoolHarness | undefined;
let monitor: ResourceMonitor | undefined;
afterEach(async () => {
  monitor?.close();
  const seen = h?.seen ?? [];
  await h?.dispose();
  expect(alive(seen)).toEqual([]);
  await killAll(seen);
  h = undefined;
  monitor = undefined;
});

const INTERVAL = 300;
const limits = (over: Partial<MonitorConfig>): MonitorConfig => ({
  resourceCheckIntervalMs: INTERVAL,
  maxCpuPercent: 90,
  maxStuckMs: 120_000,
  maxMemoryMb: 1500,
  maxTurnSilenceMs: 600_000,
  ...over,
});

/** Waits until the session's row says it ended; returns the reason and how long it took from `since`. */
async function endOf(sessionId: string, since: number): Promise<{ reason: EndReason | null; ms: number }> {
  const row = await waitFor(
    () => h!.row(sessionId)?.endReason && h!.row(sessionId),
    'the session to end',
    15_000,
  );
  return { reason: row.endReason, ms: (row.endedAt ?? 0) - since };
}

describe('ResourceMonitor with real agents', () => {
  it('ends a memory hog as memory_limit within two check intervals; nothing of its tree survives', async () => {
    h = new PoolHarness();
    monitor = new ResourceMonitor({
      pool: h.pool,
      config: limits({ maxMemoryMb: 200 }),
      logger: silentLogger(),
      store: h.store,
    });
    const s = await h.pool.acquire(threadId());
    await s.ready;
    const reply = await s.prompt('fake:hold-child 300');
    const own = h.tree(s);
    // The child's pid as the agent sees it (its namespace's, when sandboxed), mapped to the host pid.
    const child = reportedHostPids(
      [Number(reply.text.split(' ').pop())],
      own.map((p) => p.pid),
    );
    expect(child).toHaveLength(1);
    const tree: Pid[] = [...own, ...child];
    monitor.start();
    const t0 = Date.now();
    const end = await endOf(s.id, t0);
    expect(end.reason).toBe('memory_limit');
    // Two intervals, plus the tree kill's own time.
    expect(end.ms).toBeLessThan(2 * INTERVAL + 500 + 1000);
    await expectAllGone(tree);
    expect(h.row(s.id)!.peakMemMb).toBeGreaterThan(200);
  });

  it('ends a silent CPU spinner as cpu_limit once it has stayed above the limit for MAX_STUCK_MS', async () => {
    h = new PoolHarness();
    monitor = new ResourceMonitor({
      pool: h.pool,
      // Well under one core: the spinner stays above it in every sample even on a loaded machine (the rule
      // itself, sample by sample, is proven under a hand-moved clock in monitorCpuRule.test.ts).
      config: limits({ maxCpuPercent: 20, maxStuckMs: 200 }),
      logger: silentLogger(),
      store: h.store,
    });
    const s = await h.pool.acquire(threadId());
    await s.ready;
    const turn = s.prompt('fake:spin 0').catch((e: unknown) => e);
    await waitFor(() => s.state === 'busy', 'the spin turn to start');
    const tree = h.tree(s);
    monitor.start();
    const t0 = Date.now();
    const end = await endOf(s.id, t0);
    expect(end.reason).toBe('cpu_limit');
    expect(end.ms).toBeLessThan(2 * INTERVAL + 200 + 500 + 1000);
    await expectAllGone(tree);
    expect(await turn).toMatchObject({ reason: 'cpu_limit' });
    expect(h.row(s.id)!.peakCpu).toBeGreaterThan(20);
  });

  it('ends a turn that stays silent past MAX_TURN_SILENCE_MS as stuck, and spares an idle session', async () => {
    h = new PoolHarness();
    monitor = new ResourceMonitor({
      pool: h.pool,
      config: limits({ maxTurnSilenceMs: 1000 }),
      logger: silentLogger(),
      store: h.store,
    });
    const idle = await h.pool.acquire(threadId());
    const s = await h.pool.acquire(threadId());
    await Promise.all([idle.ready, s.ready]);
    void s.prompt('fake:silent 60000').catch(() => undefined);
    await waitFor(() => s.state === 'busy', 'the silent turn');
    const tree = h.tree(s);
    monitor.start();
    const end = await endOf(s.id, Date.now());
    expect(end.reason).toBe('stuck');
    await expectAllGone(tree);
    expect(idle.state).toBe('idle');
    expect(monitor.usage(idle.threadId)?.memMb).toBeGreaterThan(10);
  });
});

describe('ResourceMonitor warnings', () => {
  it('warns once when CPU crosses its limit, not on every tick, and sums the whole tree', async () => {
    h = new PoolHarness();
    const s = await h.pool.acquire(threadId());
    await s.ready;
    const warnings: { msg: string; obj: unknown }[] = [];
    const logger = silentLogger();
    const child = logger.child({});
    child.warn = ((obj: unknown, msg: string) => {
      warnings.push({ obj, msg });
    }) as typeof child.warn;
    (logger as unknown as { child: () => typeof child }).child = () => child;
    // A CPU limit of 1 % that never ends the session (the stuck window is huge).
    monitor = new ResourceMonitor({ pool: h.pool, config: limits({ maxCpuPercent: 1 }), logger });
    await monitor.tick();
    expect(warnings).toEqual([]); // the first tick only sets the CPU baseline
    const turn = s.prompt('fake:spin 3000');
    await waitFor(
      async () => {
        await monitor!.tick();
        return (monitor!.usage(s.threadId)?.cpu ?? 0) > 1;
      },
      'the spinner to show up as CPU',
      10_000,
      100,
    );
    // Two more ticks while the spinner keeps spinning: still one warning.
    for (let i = 0; i < 2; i++) {
      const before = performance.now();
      await waitFor(() => performance.now() - before >= 150, 'a measurable CPU window', 1000, 20);
      await monitor.tick();
    }
    expect(warnings.filter((w) => w.msg === 'cpu over its limit')).toHaveLength(1);
    const u = monitor.usage(s.threadId)!;
    expect(u.pids).toContain(s.pid);
    expect(u.pids.length).toBeGreaterThanOrEqual(2);
    expect(u.memMb).toBeGreaterThan(10);
    s.cancel();
    await turn;
    expect(s.state).toBe('idle');
  });
});
