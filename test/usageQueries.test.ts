import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/log/logger.js';
import { Store } from '../src/store/Store.js';

let dir: string;
let store: Store;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tw-usage-'));
  store = new Store(join(dir, 'tw.db'), { logger: silentLogger() });
});
afterEach(() => {
  store.close();
  rmSync(dir, { recursive: true, force: true });
});

const T1 = '123456789012345678';
const T2 = '223456789012345678';

function session(id: string, threadId: string): void {
  store.insertSession({
    id,
    threadId,
    channelId: undefined,
    userId: undefined,
    instanceId: 'inst',
    marker: `tw1:1:1:inst:${id}`,
    cwd: '/tmp/w',
    command: ['kiro-cli', 'acp'],
    startedAt: Date.now(),
  });
}

const turnEnd = (sessionId: string, turnId: number, usage?: Record<string, number>) =>
  store.recordEvent(sessionId, 'turn_end', { turnId, ms: 10, ...(usage && { usage }) });

describe('recorded usage sums', () => {
  it('sums credits per session and per thread over turn_end events, with the last context figure', () => {
    session('a', T1);
    session('b', T1);
    session('c', T2);
    turnEnd('a', 1, { credits: 0.5, contextPercent: 10, durationMs: 100 });
    turnEnd('a', 2, { credits: 0.25, contextPercent: 22 });
    // Usage events of a turn (kiro sends up to two metadata frames) are not summed: only turn_end is.
    store.recordEvent('a', 'usage', { turnId: 2, credits: 99 });
    turnEnd('a', 3);
    turnEnd('b', 1, { credits: 1 });
    turnEnd('c', 1, { credits: 2, contextPercent: 5 });
    const sums = store.usageOfThreads([T1]);
    expect(sums.bySession.get('a')).toEqual({
      sessionId: 'a',
      threadId: T1,
      credits: 0.75,
      turnsWithUsage: 2,
      lastContextPercent: 22,
    });
    expect(sums.bySession.get('b')).toMatchObject({ credits: 1, lastContextPercent: null });
    expect(sums.bySession.has('c')).toBe(false);
    expect(sums.byThread.get(T1)).toEqual({ credits: 1.75, sessions: 2, turnsWithUsage: 3 });
  });

  it('a session without turns or threads without sessions sum to nothing', () => {
    session('a', T1);
    expect(store.usageOfThreads([T1, T2]).bySession.get('a')).toMatchObject({
      credits: 0,
      turnsWithUsage: 0,
    });
    expect(store.usageOfThreads([T2]).byThread.size).toBe(0);
    expect(store.usageOfThreads([]).bySession.size).toBe(0);
  });
});
