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

type Protocol = 'classic' | 'acp';

/** The fake's spelling of a slow, streaming reply in each of its modes. */
const SLOW = { classic: 'fake:slow-reply', acp: 'fake:slow' } as const;

/** The shutdown deadline runBot promises with KILL_GRACE_MS=500 (KILL_GRACE_MS + 5 s). */
const DEADLINE_MS = 500 + 5000;

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

/** The standard end of a test (as BotHarness.disposeChecked): leftovers killed first, then the checks. */
afterEach(async () => {
  for (const b of bots) {
    if (b.exitCode === null && b.signalCode === null) {
      b.kill('SIGKILL');
      await exitOf(b);
    }
  }
  bots.length = 0;
  const left = alive(seen);
  await killAll(seen);
  seen.length = 0;
  await emu.stop();
  rmSync(dir, { recursive: true, force: true });
  expect(emu.errors().map((e) => ({ route: e.route, status: e.status, response: e.response }))).toEqual([]);
  expect(emu.unarchivedByBotPost).toBe(0);
  expect(left, 'processes left after the bot exited').toEqual([]);
});

interface Bot {
  readonly proc: ChildProcess;
  /** Everything the bot wrote on stdout and stderr so far. */
  readonly output: () => string;
}

/** `threadwarden start` as its own process, against the emulator. */
function startBot(protocol: Protocol, env: Record<string, string> = {}): Bot {
  const proc = spawn(process.execPath, [CLI, 'start'], {
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      DISCORD_TOKEN: 'test-token',
      DISCORD_API_BASE: emu.apiBase,
      DISCORD_GUILD_ID: emu.guildId,
      ALLOWED_USER_IDS: alice.id,
      KIRO_CLI_PATH: fakeKiroPath(),
      AGENT_PROTOCOL: protocol,
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

/** The bot's pino lines (JSON), in order; anything else it printed is skipped. */
function logLines(bot: Bot): Record<string, unknown>[] {
  const lines: Record<string, unknown>[] = [];
  for (const line of bot.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      lines.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a line cut by the end of the output so far
    }
  }
  return lines;
}

function connected(): boolean {
  return emu.identifyCount > 0 && emu.registeredCommands(emu.guildId).length === COMMANDS.length;
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

/** Why each recorded session ended, read from the bot's database once it has exited. */
function endRows() {
  const store = new Store(join(dir, 'tw.db'), { logger: silentLogger(), readonly: true });
  const rows = store.history();
  store.close();
  return rows;
}

function endReasons(): (string | null)[] {
  return endRows().map((r) => r.endReason);
}

async function exitOf(proc: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (proc.exitCode !== null || proc.signalCode !== null)
    return { code: proc.exitCode, signal: proc.signalCode };
  return new Promise((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
}

/** Sends `signal` to the bot; resolves with its exit code and how long it took to exit, ms. */
async function signalAndExit(
  proc: ChildProcess,
  signal: NodeJS.Signals,
): Promise<{ code: number | null; ms: number }> {
  const t0 = performance.now();
  proc.kill(signal);
  const { code } = await exitOf(proc);
  return { code, ms: performance.now() - t0 };
}

describe.each(['classic', 'acp'] as const)('the bot as a process over %s', (protocol) => {
  it.each(['SIGTERM', 'SIGINT'] as const)(
    '%s with live sessions: exit 0 within KILL_GRACE_MS + 5 s, no process left, every row "shutdown"',
    async (signal) => {
      const bot = startBot(protocol);
      await waitFor(connected, 'the bot to connect', 20_000);
      await openSessions(3);
      const tree = processesOwnedBy(bot.proc.pid!);
      seen.push(...tree);
      expect(tree.length).toBeGreaterThanOrEqual(9);
      const { code, ms } = await signalAndExit(bot.proc, signal);
      expect(code).toBe(0);
      expect(ms).toBeLessThan(DEADLINE_MS);
      await expectAllGone(tree, 100);
      expect(endReasons()).toEqual(['shutdown', 'shutdown', 'shutdown']);
    },
    90_000,
  );

  it('after a SIGKILL of the bot with 20 live sessions, the next start reaps every old tree within 5 s, before new work, as bot_restart', async () => {
    const first = startBot(protocol, { MAX_SESSIONS: '20' });
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
    const second = startBot(protocol);
    await expectAllGone(orphans, 5000);
    const reapMs = performance.now() - t0;
    await waitFor(() => emu.identifyCount > 1, 'the second bot to connect', 20_000);
    expect(reapMs).toBeLessThan(5000);
    const reasons = endReasons();
    expect(reasons).toHaveLength(20);
    expect(new Set(reasons)).toEqual(new Set(['bot_restart']));
    second.proc.kill('SIGTERM');
    expect((await exitOf(second.proc)).code).toBe(0);
  }, 180_000);

  it('SIGTERM in the middle of many streaming turns: clean exit within the deadline, no orphans, every row closed', async () => {
    const bot = startBot(protocol, { MAX_SESSIONS: '12' });
    await waitFor(connected, 'the bot to connect', 20_000);
    const threads = await openSessions(10);
    const tree = processesOwnedBy(bot.proc.pid!);
    seen.push(...tree);
    for (const id of threads) emu.userSays(id, alice, `${SLOW[protocol]} 200 20`);
    await waitFor(
      () => threads.every((id) => emu.channelMessages(id).some((m) => m.content.includes('working…'))),
      'every thread to be streaming',
      30_000,
    );
    const { code, ms } = await signalAndExit(bot.proc, 'SIGTERM');
    expect(code).toBe(0);
    expect(ms).toBeLessThan(DEADLINE_MS);
    await expectAllGone(tree, 100);
    const reasons = endReasons();
    expect(reasons).toHaveLength(10);
    expect(new Set(reasons)).toEqual(new Set(['shutdown']));
    // Nothing was posted into a thread after shutdown began that Discord refused.
    expect(emu.errors()).toEqual([]);
  }, 120_000);

  it('a second signal during shutdown SIGKILLs every tree at once, long before KILL_GRACE_MS, and exits 1 with every row "shutdown"', async () => {
    // A grace the test would notice: the agents ignore SIGTERM, so only the second signal can end them early.
    const bot = startBot(protocol, { KILL_GRACE_MS: '20000' });
    await waitFor(connected, 'the bot to connect', 20_000);
    await openSessions(3);
    const tree = processesOwnedBy(bot.proc.pid!);
    seen.push(...tree);
    bot.proc.kill('SIGTERM');
    await waitFor(
      () => logLines(bot).some((l) => l.msg === 'shutting down'),
      'the bot to begin its shutdown',
      10_000,
    );
    const { code, ms } = await signalAndExit(bot.proc, 'SIGINT');
    // SIGKILL of every tree (verified gone) plus at most 2 s for the sessions to record their end.
    expect(ms).toBeLessThan(5000);
    expect(code).toBe(1);
    await expectAllGone(tree, 100);
    // The rows say how the trees really ended: SIGKILL, forced, not the SIGTERM the shutdown had begun with.
    expect(endRows().map((r) => [r.endReason, r.killSignal, r.forced])).toEqual(
      Array(3).fill(['shutdown', 'SIGKILL', 1]),
    );
    const forced = logLines(bot).find((l) => String(l.msg).startsWith('second signal (SIGINT)'));
    expect(forced).toBeDefined();
  }, 90_000);

  it('SIGTERM during a start-up that cannot finish (the gateway never answers IDENTIFY): exit 1 within the deadline + 2 s, nothing left', async () => {
    emu.holdGateway();
    const bot = startBot(protocol);
    await waitFor(
      () => emu.requestLog.some((e) => e.route === 'GET /gateway/bot'),
      'the bot to look up the gateway',
      20_000,
    );
    const { code, ms } = await signalAndExit(bot.proc, 'SIGTERM');
    expect(code).toBe(1);
    expect(ms).toBeGreaterThanOrEqual(DEADLINE_MS);
    expect(ms).toBeLessThan(DEADLINE_MS + 2000);
    expect(processesOwnedBy(bot.proc.pid!)).toEqual([]);
    const passed = logLines(bot).find(
      (l) => l.msg === 'shutdown deadline passed: killing every agent tree now',
    );
    expect(passed?.unfinished).toEqual({ step: 'start-up', sessions: [] });
    expect(endReasons()).toEqual([]);
  }, 60_000);

  it('a shutdown past its deadline (Discord never answers the gateway close) still exits 1 within the deadline + 2 s, saying what was unfinished, no agent left', async () => {
    const bot = startBot(protocol);
    await waitFor(connected, 'the bot to connect', 20_000);
    await openSessions(2);
    const tree = processesOwnedBy(bot.proc.pid!);
    seen.push(...tree);
    // discord.js's destroy() now waits for its socket's 30 s close timeout: far past the deadline.
    emu.holdGateway();
    const { code, ms } = await signalAndExit(bot.proc, 'SIGTERM');
    expect(code).toBe(1);
    expect(ms).toBeGreaterThanOrEqual(DEADLINE_MS);
    expect(ms).toBeLessThan(DEADLINE_MS + 2000);
    await expectAllGone(tree, 100);
    const passed = logLines(bot).find(
      (l) => l.msg === 'shutdown deadline passed: killing every agent tree now',
    );
    expect(passed?.unfinished).toEqual({ step: 'discord', sessions: [] });
    expect(passed?.handles).toHaveProperty('TCPSocketWrap');
    // The sessions had ended before the gateway hung: their rows say so.
    expect(endReasons()).toEqual(['shutdown', 'shutdown']);
  }, 90_000);
});
