import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiscordEmulator } from '@threadwarden/discord-emulator';
import type { APIUser } from 'discord-api-types/v10';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { COMMANDS } from '../src/discord/commands.js';
import { silentLogger } from '../src/log/logger.js';
import { fakeKiroPath } from '../src/paths.js';
import { parseMarker } from '../src/process/marker.js';
import { readMarker, scanProcesses } from '../src/process/procfs.js';
import { findBwrap } from '../src/process/sandbox/probeSandbox.js';
import { Store } from '../src/store/Store.js';
import { alive, expectAllGone, identify, killAll, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

const CLI = join(import.meta.dirname, '../dist/src/cli.js');

let dir: string;
let emu: DiscordEmulator;
let alice: APIUser;
const bots: ChildProcess[] = [];
const seen: Pid[] = [];

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tw-bot-proc-'));
  emu = new DiscordEmulator();
  await emu.start();
  alice = emu.createUser('alice');
});

afterEach(async () => {
  for (const b of bots) if (b.exitCode === null && b.signalCode === null) b.kill('SIGKILL');
  bots.length = 0;
  await emu.stop();
  expect(alive(seen)).toEqual([]);
  await killAll(seen);
  seen.length = 0;
  rmSync(dir, { recursive: true, force: true });
});

/** `threadwarden start` as its own process, against the emulator. */
function startBot(env: Record<string, string> = {}): { proc: ChildProcess; output: () => string } {
  const proc = spawn(process.execPath, [CLI, 'start'], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DISCORD_TOKEN: 'test-token',
      DISCORD_API_BASE: emu.apiBase,
      DISCORD_GUILD_ID: emu.guildId,
      ALLOWED_USER_IDS: alice.id,
      KIRO_CLI_PATH: fakeKiroPath(),
      AGENT_PROTOCOL: 'classic',
      WORKSPACE_ROOT: join(dir, 'ws'),
      DATABASE_PATH: join(dir, 'tw.db'),
      KILL_GRACE_MS: '500',
      HTTP_PORT: '0',
      ...(process.env.AGENT_SANDBOX !== undefined && { AGENT_SANDBOX: process.env.AGENT_SANDBOX }),
      LOG_LEVEL: 'info',
      // Exact-content asserts: no usage footer under replies (as in BotHarness).
      USAGE_FOOTER: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  bots.push(proc);
  return { proc, output: () => out };
}

/** Every live process carrying a marker whose owner is `ownerPid`. */
function processesOwnedBy(ownerPid: number): Pid[] {
  return identify(
    scanProcesses()
      .filter((p) => p.state !== 'Z' && parseMarker(readMarker(p.pid) ?? '')?.ownerPid === ownerPid)
      .map((p) => p.pid),
  );
}

/** Opens `count` threads with a reply each; every agent also starts a setsid escaper and ignores SIGTERM. */
async function openSessions(count: number): Promise<string[]> {
  const threads: string[] = [];
  for (let i = 0; i < count; i++) {
    const m = emu.userSays(emu.defaultChannelId, alice, `fake:spawn setsid`, { mentionBot: true });
    threads.push(m.id);
  }
  for (const id of threads) {
    await emu.waitFor(() => emu.channelMessages(id).some((m) => m.content.startsWith('spawned setsid')), {
      what: `the reply in thread ${id}`,
      timeoutMs: 30_000,
    });
    emu.userSays(id, alice, 'fake:ignore-term');
  }
  for (const id of threads) {
    await emu.waitFor(() => emu.channelMessages(id).some((m) => m.content === 'ignoring SIGTERM'), {
      what: `ignore-term in ${id}`,
      timeoutMs: 30_000,
    });
  }
  return threads;
}

async function exitOf(proc: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (proc.exitCode !== null || proc.signalCode !== null)
    return { code: proc.exitCode, signal: proc.signalCode };
  return new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
}

describe('the bot as a process', () => {
  it('SIGTERM with live sessions: exit 0 within KILL_GRACE_MS + 5 s, no process left, every row "shutdown"', async () => {
    const bot = startBot();
    await waitFor(
      () => emu.identifyCount > 0 && emu.registeredCommands(emu.guildId).length === COMMANDS.length,
      'the bot to connect',
      20_000,
    );
    await openSessions(3);
    const tree = processesOwnedBy(bot.proc.pid!);
    seen.push(...tree);
    expect(tree.length).toBeGreaterThanOrEqual(9);
    const t0 = performance.now();
    bot.proc.kill('SIGTERM');
    const { code } = await exitOf(bot.proc);
    expect(code).toBe(0);
    expect(performance.now() - t0).toBeLessThan(500 + 5000);
    await expectAllGone(tree, 100);
    const store = new Store(join(dir, 'tw.db'), { logger: silentLogger(), readonly: true });
    const rows = store.history();
    store.close();
    expect(rows).toHaveLength(3);
    expect(rows.map((r) => r.endReason)).toEqual(['shutdown', 'shutdown', 'shutdown']);
  }, 90_000);

  it('after a SIGKILL of the bot with 20 live sessions, the next start reaps every old tree within 5 s, before new work, as bot_restart', async () => {
    const first = startBot({ MAX_SESSIONS: '20' });
    await waitFor(() => emu.identifyCount > 0, 'the first bot to connect', 20_000);
    await openSessions(20);
    const orphans = processesOwnedBy(first.proc.pid!);
    seen.push(...orphans);
    first.proc.kill('SIGKILL');
    await exitOf(first.proc);
    if (findBwrap()) {
      // AGENT_SANDBOX=auto on a host with bwrap: --die-with-parent ends every sandbox with the bot, within 1 s.
      await expectAllGone(orphans, 1000);
    } else {
      expect(alive(orphans).length).toBeGreaterThan(0);
    }

    const t0 = performance.now();
    const second = startBot();
    await expectAllGone(orphans, 5000);
    const reapMs = performance.now() - t0;
    await waitFor(() => emu.identifyCount > 1, 'the second bot to connect', 20_000);
    expect(reapMs).toBeLessThan(5000);
    const store = new Store(join(dir, 'tw.db'), { logger: silentLogger(), readonly: true });
    const rows = store.history();
    store.close();
    expect(rows).toHaveLength(20);
    expect(new Set(rows.map((r) => r.endReason))).toEqual(new Set(['bot_restart']));
    second.proc.kill('SIGTERM');
    expect((await exitOf(second.proc)).code).toBe(0);
  }, 180_000);

  it('SIGTERM in the middle of many streaming turns: clean exit within the deadline, no orphans, every row closed', async () => {
    const bot = startBot({ MAX_SESSIONS: '12' });
    await waitFor(
      () => emu.registeredCommands(emu.guildId).length === COMMANDS.length,
      'the bot to connect',
      20_000,
    );
    const threads = await openSessions(10);
    const tree = processesOwnedBy(bot.proc.pid!);
    seen.push(...tree);
    for (const id of threads) emu.userSays(id, alice, 'fake:slow-reply 200 20');
    await waitFor(
      () => threads.every((id) => emu.channelMessages(id).some((m) => m.content.includes('working…'))),
      'every thread to be streaming',
      30_000,
    );
    const t0 = performance.now();
    bot.proc.kill('SIGTERM');
    const { code } = await exitOf(bot.proc);
    const ms = performance.now() - t0;
    expect(code).toBe(0);
    expect(ms).toBeLessThan(500 + 5000);
    await expectAllGone(tree, 100);
    const store = new Store(join(dir, 'tw.db'), { logger: silentLogger(), readonly: true });
    const rows = store.history();
    store.close();
    expect(rows).toHaveLength(10);
    expect(new Set(rows.map((r) => r.endReason))).toEqual(new Set(['shutdown']));
    // Nothing was posted into a thread after shutdown began that Discord refused.
    expect(emu.errors()).toEqual([]);
  }, 120_000);
});
