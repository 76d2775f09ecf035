import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as pty from 'node-pty';
import { afterEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/errors.js';
import { silentLogger } from '../src/log/logger.js';
import { killTree } from '../src/process/killTree.js';
import { MARKER_VAR, readProc } from '../src/process/procfs.js';
import { ProcessTable } from '../src/process/ProcessTable.js';
import { BwrapSandbox } from '../src/process/sandbox/BwrapSandbox.js';
import { innermostPid } from '../src/process/sandbox/locateAgent.js';
import { findBwrap, probeSandbox } from '../src/process/sandbox/probeSandbox.js';
import { resolveSandbox } from '../src/process/sandbox/resolveSandbox.js';
import { commOf, namespaceMembers } from './helpers/namespace.js';
import { alive, expectAllGone, identify, killAll, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

const BWRAP = findBwrap();
// CI installs bubblewrap (.ci/run), so this never skips there.
const noBwrap = BWRAP === undefined ? 'bwrap is not installed (Debian package bubblewrap)' : '';
const FIXTURES = join(import.meta.dirname, 'fixtures');
const TREE = join(FIXTURES, 'trees/tree.sh');

const started: Pid[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await killAll(started);
  started.length = 0;
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

interface OwnerReport {
  owner: Pid;
  victim: Pid;
  probe: Pid;
  infra: Pid[];
  markers: string[];
}

interface EscapeReport {
  pid: number;
  env: string[];
  envHasSecret: boolean;
  visiblePids: number[];
  ancestors: number[];
  secretIn: string[];
  memReadable: number[];
  reads: Record<string, { ok: boolean; code?: string; hasSecret?: boolean }>;
  listings: Record<string, { ok: boolean; value?: string[]; code?: string }>;
  signals: Record<string, string>;
}

/** Runs the bot stand-in in a fresh bot directory (.env and database inside) and waits for the probe's report. */
async function runOwner(mode: 'on' | 'off') {
  const botDir = tempDir('tw-bot-');
  const secret = `canary-${randomUUID()}`;
  mkdirSync(join(botDir, 'data'), { recursive: true });
  writeFileSync(join(botDir, '.env'), `DISCORD_TOKEN=${secret}\n`);
  writeFileSync(join(botDir, 'data', 'threadwarden.db'), `SQLite format 3\0 history ${secret}`);
  const owner = spawn(process.execPath, [join(FIXTURES, 'sandbox-owner.mjs')], {
    cwd: botDir,
    env: { PATH: process.env.PATH, HOME: tempDir('tw-home-'), DISCORD_TOKEN: secret, OWNER_SANDBOX: mode },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  owner.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const info = await waitFor(() => /^OWNER (.+)$/m.exec(out)?.[1], 'the owner to start its agents', 20_000);
  const pids = JSON.parse(info) as OwnerReport;
  started.push(pids.owner, pids.victim, pids.probe, ...pids.infra);
  const line = await waitFor(() => /^ESCAPE-REPORT (.+)$/m.exec(out)?.[1], 'the probe to report', 20_000);
  return { owner, pids, report: JSON.parse(line) as EscapeReport, secret, botDir };
}

describe.skipIf(noBwrap)(`the agent sandbox (${noBwrap || BWRAP})`, () => {
  it('an agent under the sandbox finds no secret, no bot file, no other thread and no other agent', async () => {
    const { owner, pids, report, secret, botDir } = await runOwner('on');
    // The reported pid is the agent's own host pid (pid 2 of its namespace), not bwrap's.
    expect(innermostPid(pids.probe.pid)).toBe(2);
    expect(commOf(pids.probe.pid)).toBe('node');
    expect(report.pid).toBe(2);
    // Its /proc shows its own namespace only: bwrap's init and itself. No ancestor beyond init.
    expect(report.visiblePids).toEqual([1, 2]);
    expect(report.ancestors).toEqual([1]);
    expect(report.secretIn).toEqual([]);
    expect(report.envHasSecret).toBe(false);
    expect(report.env).not.toContain('DISCORD_TOKEN');
    expect(report.env).toContain(MARKER_VAR);
    expect(report.memReadable).not.toContain(pids.owner.pid);
    for (const [path, r] of Object.entries(report.reads)) expect(r, path).toEqual({ ok: false, code: 'ENOENT' });
    const victimDir = join(botDir, 'data', 'workspaces', '100000000000000001');
    expect(report.listings[victimDir]).toEqual({ ok: false, code: 'ENOENT' });
    // The workspace root and the bot directory exist only as the path to its own workspace.
    expect(report.listings[join(botDir, 'data', 'workspaces')]).toEqual({ ok: true, value: ['100000000000000002'] });
    expect(report.listings[botDir]).toEqual({ ok: true, value: ['data'] });
    expect(report.signals).toEqual({ [pids.victim.pid]: 'ESRCH', [pids.owner.pid]: 'ESRCH' });
    // SIGKILL of the bot: --die-with-parent takes every sandboxed process with it within 1 s.
    const everything = [...pids.infra, pids.victim, pids.probe, ...namespaceMembers(pids.probe.pid)];
    expect(alive(everything).length).toBeGreaterThanOrEqual(6);
    owner.kill('SIGKILL');
    const ms = await expectAllGone(everything, 1000);
    expect(ms).toBeLessThan(1000);
    expect(secret).not.toBe('');
  });

  it('with AGENT_SANDBOX=off the same probe reads the token, the files, the other thread and signals its agent', async () => {
    const { owner, pids, report, botDir } = await runOwner('off');
    expect(report.secretIn).toContain(`/proc/${pids.owner.pid}/environ`);
    expect(report.ancestors).toContain(pids.owner.pid);
    expect(report.visiblePids).toContain(pids.owner.pid);
    expect(report.reads[join(botDir, '.env')]).toEqual({ ok: true, hasSecret: true });
    expect(report.reads[join(botDir, 'data', 'threadwarden.db')]).toEqual({ ok: true, hasSecret: true });
    const victimDir = join(botDir, 'data', 'workspaces', '100000000000000001');
    expect(report.reads[join(victimDir, 'private.txt')]).toEqual({ ok: true, hasSecret: true });
    expect(report.listings[victimDir]?.ok).toBe(true);
    expect(report.signals[pids.victim.pid]).toBe('delivered');
    owner.kill('SIGKILL');
  });
});
