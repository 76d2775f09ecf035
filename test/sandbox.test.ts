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
import { ProcessTable } from '../src/process/ProcessTable.js';
import { MARKER_VAR, readProc } from '../src/process/procfs.js';
import { BwrapSandbox } from '../src/process/sandbox/BwrapSandbox.js';
import { innermostPid } from '../src/process/sandbox/locateAgent.js';
import { findBwrap, probeSandbox } from '../src/process/sandbox/probeSandbox.js';
import { resolveSandbox } from '../src/process/sandbox/resolveSandbox.js';
import { spawnAgent } from '../src/process/spawnAgent.js';
import { commOf, namespaceMembers } from './helpers/namespace.js';
import { alive, expectAllGone, killAll, type Pid } from './helpers/processes.js';
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
    for (const [path, r] of Object.entries(report.reads))
      expect(r, path).toEqual({ ok: false, code: 'ENOENT' });
    const victimDir = join(botDir, 'data', 'workspaces', '100000000000000001');
    expect(report.listings[victimDir]).toEqual({ ok: false, code: 'ENOENT' });
    // The workspace root and the bot directory exist only as the path to its own workspace.
    expect(report.listings[join(botDir, 'data', 'workspaces')]).toEqual({
      ok: true,
      value: ['100000000000000002'],
    });
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

interface Sandboxed {
  readonly outer: number;
  readonly cwd: string;
  readonly agent: Pid;
  readonly infra: readonly Pid[];
  readonly marker: string;
  readonly output: () => string;
  readonly exited: Promise<{ exitCode: number | null; signal: number | string | null }>;
}

/** Spawns `file args` in a sandbox the way the bot does, in a pty or on pipes; records every pid for cleanup. */
function spawnSandboxed(
  mode: 'pty' | 'pipes',
  file: string,
  args: string[],
  extraEnv: Record<string, string> = {},
): Sandboxed {
  const root = tempDir('tw-sbx-');
  const cwd = join(root, 'workspaces', '100000000000000042');
  mkdirSync(cwd, { recursive: true });
  const marker = `tw1:0:0:test:${randomUUID()}`;
  const sandbox = new BwrapSandbox({
    bwrap: BWRAP!,
    workspaceRoot: join(root, 'workspaces'),
    hidden: [root],
  });
  const spec = sandbox.wrap({
    file,
    args,
    cwd,
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', [MARKER_VAR]: marker, ...extraEnv },
    mode,
  });
  let out = '';
  let outer: number;
  let exited: Sandboxed['exited'];
  if (mode === 'pty') {
    const term = pty.spawn(spec.file, [...spec.args], { cwd, env: { ...spec.env }, cols: 120, rows: 40 });
    term.onData((d) => {
      out += d;
    });
    outer = term.pid;
    exited = new Promise((r) => term.onExit((e) => r({ exitCode: e.exitCode, signal: e.signal ?? null })));
  } else {
    const child: ChildProcess = spawn(spec.file, [...spec.args], {
      cwd,
      env: { ...spec.env },
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    child.stderr!.on('data', (d: Buffer) => {
      out += d.toString();
    });
    outer = child.pid!;
    exited = new Promise((r) => child.once('exit', (exitCode, signal) => r({ exitCode, signal })));
  }
  const located = sandbox.locate(outer);
  if (!located) throw new Error(`bwrap exited before its agent started: ${out}`);
  started.push(...located.infra, located.agent);
  return { outer, cwd, agent: located.agent, infra: located.infra, marker, output: () => out, exited };
}

describe.skipIf(noBwrap)('teardown inside the sandbox', () => {
  it.each(['pty', 'pipes'] as const)(
    'setsid escapers, double forks and SIGTERM ignorers die with the session (%s)',
    async (mode) => {
      const s = spawnSandboxed(mode, TREE, [], { TREE_IGNORE_TERM: '1' });
      await waitFor(() => s.output().includes('TREE-READY'), 'the tree to start');
      // Every sleeper has exec'd: 5 sleeps (the setsid one without the marker too), the tree, the init.
      const members = await waitFor(() => {
        const m = namespaceMembers(s.agent.pid);
        return m.filter((p) => commOf(p.pid) === 'sleep').length === 5 ? m : undefined;
      }, 'every process of the tree to start');
      started.push(...members);
      const table = new ProcessTable();
      const kill = await killTree(
        { pid: s.agent.pid, startTime: s.agent.startTime, marker: s.marker },
        { graceMs: 300, table, spareOnTerm: s.infra, termLast: s.agent },
      );
      // The ignorer outlives the grace: SIGKILL for all, as without a sandbox.
      expect(kill.forced).toBe(true);
      expect(kill.survivors).toEqual([]);
      expect(kill.durationMs).toBeLessThan(300 + 1000);
      await expectAllGone([...members, ...s.infra, s.agent], 1000);
    },
  );

  it('the agent gets SIGTERM and its grace; bwrap, spared, leaves once the agent is gone', async () => {
    const script =
      "process.on('SIGTERM', () => { setTimeout(() => { require('fs').writeFileSync('term.txt', 'clean'); process.exit(0); }, 100); }); process.stdout.write('UP\\n'); setInterval(() => {}, 1000);";
    const s = spawnSandboxed('pipes', process.execPath, ['-e', script]);
    await waitFor(() => s.output().includes('UP'), 'the agent to start');
    const kill = await killTree(
      { pid: s.agent.pid, startTime: s.agent.startTime, marker: s.marker },
      { graceMs: 10_000, table: new ProcessTable(), spareOnTerm: s.infra },
    );
    expect(kill).toMatchObject({ signal: 'SIGTERM', forced: false, survivors: [] });
    expect(readFileSync(join(s.cwd, 'term.txt'), 'utf8')).toBe('clean');
    await expectAllGone([...s.infra, s.agent], 2000);
  });

  it("kiro's shape: a wrapper that dies on SIGTERM is signalled last, so its chat child finishes its clean exit", async () => {
    const chat =
      "process.on('SIGTERM', () => setTimeout(() => { require('fs').writeFileSync('chat.txt', 'clean'); process.exit(0); }, 150)); process.stdout.write('CHAT-UP\\n'); setInterval(() => {}, 1000);";
    const wrapper = `const c = require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(chat)}], { stdio: 'inherit' }); c.on('exit', (code) => process.exit(code ?? 1)); process.stdout.write('UP ' + c.pid + '\\n');`;
    const s = spawnSandboxed('pty', process.execPath, ['-e', wrapper]);
    await waitFor(() => s.output().includes('CHAT-UP'), 'the wrapper and its chat to start', 20_000).catch(
      (err: Error) => {
        const ps = namespaceMembers(s.agent.pid).map(
          (p) => `${p.pid}:${commOf(p.pid)}:${readProc(p.pid)?.state}`,
        );
        throw new Error(`${err.message}; output ${JSON.stringify(s.output())}; namespace ${ps.join(' ')}`);
      },
    );
    const members = namespaceMembers(s.agent.pid);
    expect(members.length).toBe(3);
    const kill = await killTree(
      { pid: s.agent.pid, startTime: s.agent.startTime, marker: s.marker },
      // A long grace costs nothing when the tree exits cleanly, and keeps a loaded machine from turning it into a kill.
      { graceMs: 10_000, table: new ProcessTable(), spareOnTerm: s.infra, termLast: s.agent },
    );
    expect(kill).toMatchObject({ signal: 'SIGTERM', forced: false, survivors: [] });
    expect(readFileSync(join(s.cwd, 'chat.txt'), 'utf8')).toBe('clean');
    await expectAllGone([...members, ...s.infra], 1000);
  });

  it('without sparing bwrap, a SIGTERM to it SIGKILLs the namespace and the agent gets no grace', async () => {
    const script =
      "process.on('SIGTERM', () => { setTimeout(() => { require('fs').writeFileSync('term.txt', 'clean'); process.exit(0); }, 100); }); process.stdout.write('UP\\n'); setInterval(() => {}, 1000);";
    const s = spawnSandboxed('pipes', process.execPath, ['-e', script]);
    await waitFor(() => s.output().includes('UP'), 'the agent to start');
    process.kill(s.outer, 'SIGTERM');
    await expectAllGone([...s.infra, s.agent], 2000);
    // The agent was SIGKILLed by the kernel (its namespace's init died), so its handler never finished.
    expect((await s.exited).signal).toBe('SIGTERM');
    expect(existsSync(join(s.cwd, 'term.txt'))).toBe(false);
  });
});

describe.skipIf(noBwrap)('finding sandboxed processes after a crash', () => {
  it("the restart's reaper finds a sandboxed tree by its marker and kills all of it", async () => {
    // A marker whose owner (pid 1's start time never matches) is dead: what a SIGKILLed bot leaves in the table.
    const s = spawnSandboxed('pipes', TREE, [], { TREE_IGNORE_TERM: '1' });
    await waitFor(() => s.output().includes('TREE-READY'), 'the tree to start');
    const members = await waitFor(() => {
      const m = namespaceMembers(s.agent.pid);
      return m.filter((p) => commOf(p.pid) === 'sleep').length === 5 ? m : undefined;
    }, 'every process of the tree to start');
    started.push(...members);
    const { reapOrphans } = await import('../src/pool/Reaper.js');
    // The reaper acts on this test's marker only: other suites on this machine also carry dead-owner markers.
    const sessionId = s.marker.split(':')[4];
    const reaped = await reapOrphans({
      table: new ProcessTable(),
      logger: silentLogger(),
      graceMs: 200,
      owns: (m) => m.sessionId === sessionId,
    });
    const mine = reaped.sessions.find((r) => r.marker === s.marker);
    expect(mine?.pids.length).toBeGreaterThanOrEqual(members.length);
    await expectAllGone([...members, ...s.infra], 2000);
  });
});

describe('AGENT_SANDBOX at start-up', () => {
  const base = { workspaceRoot: '/tmp/ws', databasePath: '/tmp/db', logger: silentLogger() };
  const failing = async () => ({
    ok: false as const,
    reason: 'bwrap: Creating new namespace failed: Operation not permitted',
  });

  it('on: refuses to start with a config error naming AGENT_SANDBOX and what failed', async () => {
    const err = await resolveSandbox({ ...base, mode: 'on', probe: failing }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).issues[0]).toMatchObject({ variable: 'AGENT_SANDBOX', value: 'on' });
    expect((err as ConfigError).message).toContain('Operation not permitted');
  });

  it('auto: falls back to unsandboxed with the reason, never silently', async () => {
    const warnings: unknown[] = [];
    const logger = silentLogger();
    logger.warn = ((obj: unknown) => {
      warnings.push(obj);
    }) as typeof logger.warn;
    const r = await resolveSandbox({ ...base, logger, mode: 'auto', probe: failing });
    expect(r.sandbox).toBeUndefined();
    expect(r.status.mechanism).toBe('off');
    expect(r.status.warning).toContain('Operation not permitted');
    expect(warnings).toHaveLength(1);
  });

  it('off: no probe, no sandbox, and it says so', async () => {
    let probed = false;
    const r = await resolveSandbox({
      ...base,
      mode: 'off',
      probe: async () => {
        probed = true;
        return failing();
      },
    });
    expect(probed).toBe(false);
    expect(r.status).toEqual({ mode: 'off', mechanism: 'off' });
  });

  it.skipIf(noBwrap)(
    'auto on a host where bwrap works: a real probe passes and agents get bwrap',
    async () => {
      const probe = await probeSandbox();
      expect(probe.ok).toBe(true);
      const r = await resolveSandbox({ ...base, mode: 'auto' });
      expect(r.status).toEqual({ mode: 'auto', mechanism: 'bwrap' });
      expect(r.sandbox?.name).toBe('bwrap');
    },
  );

  it('a probe with a bwrap that cannot sandbox reports why', async () => {
    const r = await probeSandbox({ bwrap: '/bin/false' });
    expect(r).toEqual({ ok: false, reason: expect.stringContaining('/bin/false failed (exit 1)') });
  });
});

describe.skipIf(noBwrap)('the filesystem view', () => {
  it('a bot installed under a system directory is masked, while its agent executable and the workspace stay visible', async () => {
    // A stand-in system root holding the bot: <sys>/bot/.env, <sys>/bot/data/tw.db, <sys>/bot/agent/run.sh.
    const sys = tempDir('tw-sys-');
    const bot = join(sys, 'bot');
    mkdirSync(join(bot, 'data', 'workspaces', '100000000000000042'), { recursive: true });
    mkdirSync(join(bot, 'agent'));
    writeFileSync(join(bot, '.env'), 'DISCORD_TOKEN=x\n');
    writeFileSync(join(bot, 'data', 'tw.db'), 'history');
    writeFileSync(join(sys, 'visible.txt'), 'system file\n');
    const run = join(bot, 'agent', 'run.sh');
    writeFileSync(
      run,
      `#!/bin/sh\nfor f in ${join(sys, 'visible.txt')} ${join(bot, '.env')} ${join(bot, 'data', 'tw.db')} ${run}; do test -e "$f" && echo "SEEN $f" || echo "GONE $f"; done\necho DONE\n`,
      { mode: 0o755 },
    );
    const workspace = join(bot, 'data', 'workspaces', '100000000000000042');
    const sandbox = new BwrapSandbox({
      bwrap: BWRAP!,
      workspaceRoot: join(bot, 'data', 'workspaces'),
      hidden: [bot, join(bot, '.env'), join(bot, 'data')],
      system: ['/usr', '/bin', '/lib', '/lib64', '/etc', sys],
    });
    const spec = sandbox.wrap({
      file: run,
      args: [],
      cwd: workspace,
      env: { PATH: '/usr/bin:/bin' },
      mode: 'pipes',
    });
    const out = await new Promise<string>((resolve) => {
      const c = spawn(spec.file, [...spec.args], { env: { ...spec.env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let text = '';
      c.stdout.on('data', (d: Buffer) => {
        text += d.toString();
      });
      c.stderr.on('data', (d: Buffer) => {
        text += d.toString();
      });
      c.once('close', () => resolve(text));
    });
    expect(out).toContain(`SEEN ${join(sys, 'visible.txt')}`);
    expect(out).toContain(`GONE ${join(bot, '.env')}`);
    expect(out).toContain(`SEEN ${run}`);
    // data/ exists only as the path to the workspace: its database would not.
    expect(out).toContain(`GONE ${join(bot, 'data', 'tw.db')}`);
    expect(out).toContain('DONE');
  });
});

describe.skipIf(noBwrap)('spawnAgent with the sandbox', () => {
  it.each(['pty', 'pipes'] as const)(
    'reports the agent’s own pid, and its death by a signal as that signal (%s)',
    async (mode) => {
      const root = tempDir('tw-spawn-');
      const cwd = join(root, 'workspaces', '100000000000000043');
      mkdirSync(cwd, { recursive: true });
      const sandbox = new BwrapSandbox({
        bwrap: BWRAP!,
        workspaceRoot: join(root, 'workspaces'),
        hidden: [root],
      });
      const proc = spawnAgent(
        {
          file: '/bin/sh',
          args: ['-c', 'echo ready; read line; kill -TERM $$'],
          cwd,
          env: { PATH: '/usr/bin:/bin', [MARKER_VAR]: `tw1:0:0:test:${randomUUID()}` },
          mode,
        },
        sandbox,
      );
      started.push({ pid: proc.pid, startTime: proc.startTime! }, ...(proc.sandbox?.infra ?? []));
      expect(proc.sandbox?.name).toBe('bwrap');
      expect(proc.sandbox?.infra).toHaveLength(2);
      expect(innermostPid(proc.pid)).toBe(2);
      let out = '';
      proc.onData((d) => {
        out += d;
      });
      const exit = new Promise<{ exitCode: number; signal: number | undefined }>((r) => proc.onExit(r));
      await waitFor(() => out.includes('ready'), 'the agent to start');
      // Found as soon as bwrap forked it; the same pid and start time once it has exec'd the agent.
      expect(commOf(proc.pid)).toBe('sh');
      expect(readProc(proc.pid)?.startTime).toBe(proc.startTime);
      proc.write('go\n');
      expect(await exit).toEqual({ exitCode: 0, signal: 15 });
      await expectAllGone(
        [...(proc.sandbox?.infra ?? []), { pid: proc.pid, startTime: proc.startTime! }],
        1000,
      );
    },
  );
});
