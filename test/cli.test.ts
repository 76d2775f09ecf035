import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/log/logger.js';
import { Store } from '../src/store/Store.js';
import { killedOwnerPids } from './helpers/owner.js';
import { alive, expectAllGone, identify, killAll, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

const CLI = join(import.meta.dirname, '../dist/src/cli.js');
let dir: string;
const started: Pid[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tw-cli-'));
});
afterEach(async () => {
  await killAll(started);
  started.length = 0;
  rmSync(dir, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [CLI, ...args], {
    env: { PATH: process.env.PATH, DATABASE_PATH: join(dir, 'tw.db'), ...env },
    encoding: 'utf8',
    timeout: 30_000,
  });
}

/** Orphans of a bot stand-in SIGKILLed with `sessions` live sessions. */
async function orphansOfKilledOwner(sessions: number): Promise<Pid[]> {
  const orphans = identify(await killedOwnerPids(join(dir, 'tw.db'), join(dir, 'ws'), sessions));
  started.push(...orphans);
  return orphans;
}

/** The fake agent's sleeper children (test/fixtures/fake-kiro/sleeper.js sets its title to fake-<mode>). */
function isSleeper(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').startsWith('fake-');
  } catch {
    return false;
  }
}

/** A signal pending for the process that it neither ignores nor catches, so it is about to die. */
function deadlySignalPending(pid: number): boolean {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const mask = (name: string) =>
      BigInt(`0x${new RegExp(`^${name}:\\s*([0-9a-f]+)$`, 'm').exec(status)?.[1] ?? '0'}`);
    return ((mask('SigPnd') | mask('ShdPnd')) & ~(mask('SigIgn') | mask('SigCgt'))) !== 0n;
  } catch {
    return false;
  }
}

describe('threadwarden CLI', () => {
  it('prints usage and per-command help; unknown commands exit 2', () => {
    expect(cli(['--help']).stdout).toContain('Commands:');
    expect(cli(['history', '--help']).stdout).toContain('--reason R');
    const bad = cli(['frobnicate']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('unknown command "frobnicate"');
    expect(cli(['history', '--reason', 'bored']).status).toBe(2);
  });

  it('history lists sessions with their end reasons, as a table and as JSON, with filters', () => {
    const store = new Store(join(dir, 'tw.db'), { logger: silentLogger() });
    const reasons = ['archived', 'idle_ttl', 'crashed'] as const;
    reasons.forEach((reason, i) => {
      const id = `s${i}`;
      store.insertSession({
        id,
        threadId: `10000000000000000${i}`,
        channelId: undefined,
        userId: undefined,
        instanceId: 'i',
        marker: `tw1:1:1:i:${id}`,
        cwd: '/w',
        command: ['kiro-cli'],
        startedAt: Date.now() - 1000 * (3 - i),
      });
      store.endSession(id, {
        reason,
        endedAt: Date.now(),
        exitCode: 0,
        exitSignal: undefined,
        killSignal: 'SIGTERM',
        forced: reason === 'crashed',
        pidsKilled: [1000 + i],
        teardownMs: 10,
        lastOutput: undefined,
      });
    });
    store.recordEvent('s0', 'turn_end', { turnId: 1, usage: { credits: 0.5, contextPercent: 12 } });
    store.recordEvent('s0', 'turn_end', { turnId: 2, usage: { credits: 0.25, contextPercent: 30 } });
    store.close();
    const json = cli(['history', '--json']);
    expect(json.status).toBe(0);
    const rows = JSON.parse(json.stdout) as { endReason: string; threadId: string }[];
    expect(rows.map((r) => r.endReason)).toEqual(['crashed', 'idle_ttl', 'archived']);
    expect(rows.at(-1)).toMatchObject({ credits: 0.75, threadCredits: 0.75, contextPercent: 30 });
    expect(rows[0]).toMatchObject({ credits: 0, threadCredits: 0, contextPercent: null });
    const table = cli(['history']);
    expect(table.stdout.split('\n')[0]).toMatch(/credits {2}thread credits$/);
    expect(table.stdout).toMatch(/0\.75 +0\.75\n$/);
    expect(table.stdout).toMatch(/reason/);
    expect(table.stdout).toContain('SIGTERM (forced)');
    const filtered = JSON.parse(cli(['history', '--json', '--reason', 'idle_ttl']).stdout) as unknown[];
    expect(filtered).toHaveLength(1);
    const thread = JSON.parse(
      cli(['history', '--json', '--thread', '100000000000000000']).stdout,
    ) as unknown[];
    expect(thread).toHaveLength(1);
    expect(JSON.parse(cli(['history', '--json', '--limit', '2']).stdout)).toHaveLength(2);
    expect(JSON.parse(cli(['history', '--json', '--since', '1ms']).stdout)).toHaveLength(0);
  });

  it('reap --dry-run lists the orphans of a killed instance and kills none of them; reap kills them and closes their rows', async () => {
    const orphans = await orphansOfKilledOwner(2);
    // The owner's death hangs up the ptys, which ends part of each tree by itself, at its own pace. The fake's
    // sleepers that escaped the hangup (own session or group, or SIGHUP ignored) stay until killed: once none of
    // them has a deadly signal pending, they are the orphans whose fate depends only on the reaper.
    const stable = await waitFor(() => {
      const sleepers = alive(orphans).filter((p) => isSleeper(p.pid));
      return sleepers.every((p) => !deadlySignalPending(p.pid)) && alive(sleepers).length === sleepers.length
        ? sleepers
        : undefined;
    }, 'the hangup to settle');
    expect(stable.length).toBeGreaterThanOrEqual(4);
    const dry = cli(['reap', '--dry-run']);
    expect(dry.status).toBe(0);
    // Its sessions that hold our orphans: exactly the owner's two (on a shared host, other runs' orphans may be
    // listed too: reap looks at every marker whose owner is dead).
    const ours = new Set(orphans.map((p) => p.pid));
    const sessions = [
      ...dry.stdout.matchAll(/would kill session (\S+) \(instance \S+\): pids ([\d ]+)/g),
    ].filter((m) =>
      m[2]!
        .trim()
        .split(' ')
        .map(Number)
        .some((pid) => ours.has(pid)),
    );
    expect(sessions).toHaveLength(2);
    // It names every one of them, and killed none: the same pids, same start times, still alive, no signal pending.
    const listed = new Set(sessions.flatMap((m) => m[2]!.trim().split(' ').map(Number)));
    for (const p of stable) expect(listed.has(p.pid)).toBe(true);
    expect(alive(stable)).toEqual(stable);
    expect(stable.filter((p) => deadlySignalPending(p.pid))).toEqual([]);
    // Nothing of the dry run changed the database either: both rows are still open.
    expect(
      (JSON.parse(cli(['history', '--json']).stdout) as { endReason: string | null }[]).map(
        (r) => r.endReason,
      ),
    ).toEqual([null, null]);
    const real = cli(['reap'], { KILL_GRACE_MS: '300' });
    expect(real.status).toBe(0);
    expect(real.stdout).toMatch(/closed 2 open row\(s\)/);
    await expectAllGone(orphans, 2000);
    const rows = JSON.parse(cli(['history', '--json']).stdout) as { endReason: string }[];
    expect(rows.map((r) => r.endReason)).toEqual(['bot_restart', 'bot_restart']);
  }, 60_000);
});
