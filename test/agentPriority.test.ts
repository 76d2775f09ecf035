import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { autogroupNice, type PriorityFs, PriorityKeeper } from '../src/process/agentPriority.js';
import { readProc } from '../src/process/procfs.js';
import { PoolHarness, threadId } from './helpers/harness.js';
import { waitFor } from './helpers/wait.js';

/** Field 19 of /proc/<pid>/stat: the process's own nice value. */
function niceOf(pid: number): number {
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(text.slice(text.lastIndexOf(')') + 2).split(' ')[16]);
}

const autogroupOf = (pid: number) => autogroupNice(readFileSync(`/proc/${pid}/autogroup`, 'utf8'));
const hasAutogroup = existsSync('/proc/self/autogroup');

let h: PoolHarness | undefined;
afterEach(async () => {
  await h?.disposeChecked();
  h = undefined;
});

describe('AGENT_NICE: agents run below the bot', () => {
  it.each(['acp', 'classic'] as const)(
    '%s: the agent runs at the nice value and every process of its tree in a lowered scheduling group; the bot stays as it was',
    async (protocol) => {
      h = new PoolHarness({
        agentNice: 19,
        ...(protocol === 'acp' && { agentProtocol: 'acp', kiroArgs: ['acp'], acpLoadTimeoutMs: 5000 }),
      });
      const botBefore = { nice: niceOf(process.pid), group: hasAutogroup ? autogroupOf(process.pid) : 0 };
      const s = await h.pool.acquire(threadId());
      await s.ready;
      // A child started after the spawn, in the agent's own process group (same session).
      await s.prompt('fake:spawn group');
      expect(niceOf(s.pid!)).toBe(19);
      if (hasAutogroup) {
        // In a sandbox the agent calls setsid a moment after it appears: its group is lowered once it has.
        await waitFor(
          () => h!.tree(s).every((p) => autogroupOf(p.pid) === 19 || readProc(p.pid) === undefined),
          'every process of the tree in a group at nice 19',
          5000,
        );
        expect(h.tree(s).length).toBeGreaterThan(1);
      }
      expect(niceOf(process.pid)).toBe(botBefore.nice);
      if (hasAutogroup) expect(autogroupOf(process.pid)).toBe(botBefore.group);
    },
  );

  it('AGENT_NICE unset leaves the agent at the priority it inherits', async () => {
    h = new PoolHarness({ agentProtocol: 'acp', kiroArgs: ['acp'], acpLoadTimeoutMs: 5000 });
    const s = await h.pool.acquire(threadId());
    await s.ready;
    h.tree(s);
    expect(niceOf(s.pid!)).toBe(niceOf(process.pid));
  });
});

/**
 * The kernel lets an unprivileged process change an autogroup's nice once per 100 ms (EAGAIN otherwise). A world
 * that enforces that limit on a hand-moved clock: the keeper must get every agent there, one write per window.
 */
function limitedWorld() {
  let now = 0;
  let lastWrite = Number.NEGATIVE_INFINITY;
  const groups = new Map<number, number>();
  const starts = new Map<number, number>();
  const writes: number[] = [];
  /** Processes still in the bot's group (a pty child before its setsid); the bot's group is "/autogroup-1". */
  const inBotGroup = new Set<number>();
  let botNice = 0;
  const fs: PriorityFs = {
    readAutogroup: (pid) =>
      inBotGroup.has(pid)
        ? `/autogroup-1 nice ${botNice}\n`
        : groups.has(pid)
          ? `/autogroup-${pid} nice ${groups.get(pid)}\n`
          : undefined,
    readOwnAutogroup: () => `/autogroup-1 nice ${botNice}\n`,
    writeAutogroup: (pid, nice) => {
      if (now - lastWrite < 100) throw Object.assign(new Error('EAGAIN'), { code: 'EAGAIN' });
      lastWrite = now;
      writes.push(pid);
      if (inBotGroup.has(pid)) botNice = nice;
      else groups.set(pid, nice);
    },
    setNice: () => undefined,
    startTime: (pid) => starts.get(pid),
  };
  const spawn = (pid: number, start: number) => {
    groups.set(pid, 0);
    starts.set(pid, start);
  };
  return {
    fs,
    groups,
    inBotGroup,
    botNice: () => botNice,
    starts,
    writes,
    spawn,
    clock: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

describe('PriorityKeeper under the kernel’s write limit', () => {
  it('lowers every agent of a burst, one write per 100 ms, and never writes for a pid now held by another process', () => {
    const w = limitedWorld();
    const keeper = new PriorityKeeper(w.fs, w.clock);
    for (let pid = 100; pid < 105; pid++) {
      w.spawn(pid, pid * 10);
      keeper.lower(pid, pid * 10, 19);
    }
    // pid 104 exits and its number goes to an unrelated process before its turn comes.
    w.starts.set(104, 99_999);
    for (let i = 0; i < 40 && keeper.pending > 0; i++) {
      w.advance(110);
      keeper.tick();
    }
    keeper.close();
    expect([100, 101, 102, 103].map((pid) => w.groups.get(pid))).toEqual([19, 19, 19, 19]);
    expect(w.groups.get(104)).toBe(0);
    expect(w.writes).not.toContain(104);
    expect(new Set(w.writes).size).toBe(w.writes.length);
  });

  it('never lowers the bot’s own group: a pty child handed over before its setsid is lowered once it has its own', () => {
    const w = limitedWorld();
    const keeper = new PriorityKeeper(w.fs, w.clock);
    w.spawn(300, 3000);
    w.inBotGroup.add(300);
    keeper.lower(300, 3000, 19);
    w.advance(110);
    keeper.tick();
    expect(w.botNice()).toBe(0);
    expect(w.writes).toEqual([]);
    // The child calls setsid: a group of its own, at nice 0.
    w.inBotGroup.delete(300);
    for (let i = 0; i < 30 && keeper.pending > 0; i++) {
      w.advance(110);
      keeper.tick();
    }
    keeper.close();
    expect(w.botNice()).toBe(0);
    expect(w.groups.get(300)).toBe(19);
  });

  it('looks again after a late setsid (a new group at nice 0) and lowers that group too', () => {
    const w = limitedWorld();
    const keeper = new PriorityKeeper(w.fs, w.clock);
    w.spawn(200, 2000);
    keeper.lower(200, 2000, 19);
    expect(w.groups.get(200)).toBe(19);
    // The agent calls setsid: its new group starts at nice 0.
    w.groups.set(200, 0);
    for (let i = 0; i < 30 && keeper.pending > 0; i++) {
      w.advance(110);
      keeper.tick();
    }
    keeper.close();
    expect(w.groups.get(200)).toBe(19);
  });
});
