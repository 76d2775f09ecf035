import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import type { EndReason } from '../src/endReasons.js';
import { silentLogger } from '../src/log/logger.js';
import { ResourceMonitor } from '../src/monitor/ResourceMonitor.js';
import { ProcStatSampler } from '../src/monitor/UsageSampler.js';
import type { SessionPool } from '../src/pool/SessionPool.js';
import { ProcessTable } from '../src/process/ProcessTable.js';
import type { ProcInfo } from '../src/process/procfs.js';

const INTERVAL = 10_000;
const STUCK = 120_000;

/**
 * A controlled world: one busy session whose tree is one process, a hand-moved clock, and CPU figures the test
 * sets per tick (percent of one core over the last interval). Output timestamps are set by the test too.
 */
function world() {
  let clock = 1_000_000;
  let cpuTicks = 0;
  const proc = (): ProcInfo => ({
    pid: 4000,
    ppid: 1,
    pgid: 4000,
    sid: 4000,
    state: 'R',
    startTime: 7,
    comm: 'build',
    cpuTicks,
    rssPages: 1000,
  });
  const table = new ProcessTable({ scan: () => [proc()], readMarker: () => 'm', now: () => clock });
  const session = {
    id: 's1',
    threadId: '100000000000000001',
    pid: 4000,
    pidStartTime: 7,
    marker: 'm',
    state: 'busy',
    turnStartedAt: clock,
    lastOutputAt: clock,
    pendingPermission: undefined,
  };
  const closes: { at: number; reason: EndReason }[] = [];
  const pool = Object.assign(new EventEmitter(), {
    table,
    list: () => (session.state === 'busy' ? [session] : []),
    get: () => session,
    close: (_id: string, reason: EndReason) => {
      closes.push({ at: clock - session.turnStartedAt, reason });
      session.state = 'closing';
      return Promise.resolve(undefined);
    },
  });
  const monitor = new ResourceMonitor({
    pool: pool as unknown as SessionPool,
    config: {
      resourceCheckIntervalMs: INTERVAL,
      maxCpuPercent: 90,
      maxStuckMs: STUCK,
      maxMemoryMb: 1500,
      maxTurnSilenceMs: 3_600_000,
    },
    logger: silentLogger(),
    now: () => clock,
    sampler: new ProcStatSampler(),
  });
  return {
    session,
    closes,
    /** Advances the clock one interval during which the tree used `percent` of one core, then ticks. */
    async tick(percent: number, output: boolean) {
      clock += INTERVAL;
      cpuTicks += Math.round((percent / 100) * (INTERVAL / 1000) * 100);
      if (output) session.lastOutputAt = clock - 1000;
      await monitor.tick();
    },
    elapsed: () => clock - session.turnStartedAt,
  };
}

describe('cpu_limit is a sustained rule', () => {
  it('spares a parallel build at 800 % for three minutes while it keeps producing output', async () => {
    const w = world();
    await w.tick(0, true); // baseline
    while (w.elapsed() < 180_000) await w.tick(800, true);
    expect(w.closes).toEqual([]);
    expect(w.session.state).toBe('busy');
  });

  it('ends the same 800 % once it has printed nothing for a whole window, and not one tick earlier', async () => {
    const w = world();
    await w.tick(0, true);
    while (w.elapsed() < 180_000) await w.tick(800, true);
    const silentFrom = w.elapsed() - 1000; // the last output
    while (w.closes.length === 0 && w.elapsed() < 600_000) await w.tick(800, false);
    expect(w.closes.map((c) => c.reason)).toEqual(['cpu_limit']);
    const at = w.closes[0]!.at;
    expect(at - silentFrom).toBeGreaterThanOrEqual(STUCK);
    expect(at - silentFrom).toBeLessThan(STUCK + INTERVAL);
  });

  it('one sample under the limit restarts the window: a silent spinner dies a full window after its dip', async () => {
    const w = world();
    await w.tick(0, false);
    while (w.elapsed() < 100_000) await w.tick(95, false);
    await w.tick(50, false); // the interval ending at 110 s was under the limit
    const dipEnd = w.elapsed();
    while (w.closes.length === 0 && w.elapsed() < 600_000) await w.tick(95, false);
    expect(w.closes.map((c) => c.reason)).toEqual(['cpu_limit']);
    // Above the limit in every sample from the dip's end for a whole window, then killed at once.
    expect(w.closes[0]!.at).toBe(dipEnd + STUCK);
  });

  it('a silent spinner that never dips ends as cpu_limit one window after its first over-limit interval began', async () => {
    const w = world();
    await w.tick(0, false);
    while (w.closes.length === 0 && w.elapsed() < 600_000) await w.tick(95, false);
    expect(w.closes).toEqual([{ at: STUCK + INTERVAL, reason: 'cpu_limit' }]);
  });
});
