import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as pty from 'node-pty';
import type { AgentSession } from '../src/agent/AgentSession.js';
import { silentLogger } from '../src/log/logger.js';
import { fakeKiroPath } from '../src/paths.js';
import { type PoolConfig, SessionPool } from '../src/pool/SessionPool.js';
import { ProcessTable } from '../src/process/ProcessTable.js';
import { isAlive, MARKER_VAR, readProc, scanProcesses } from '../src/process/procfs.js';
import { BwrapSandbox } from '../src/process/sandbox/BwrapSandbox.js';
import { findBwrap } from '../src/process/sandbox/probeSandbox.js';
import { SessionRecorder } from '../src/store/SessionRecorder.js';
import { Store } from '../src/store/Store.js';

/** The classic UI opens every input read with this (bracketed paste on): the agent waits for input. */
export const PROMPT_BYTES = '\x1b[?2004h';
/** How a read's prompt ends (the cursor placed after it): a turn is over when the output ends so after Credits. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: the prompt's bytes are escape sequences.
const PROMPT_END = /\x1b\[\?2004h[^\x1b]*\x1b\[K[\s\S]*\r\x1b\[\d+C$/;

/** The environment every bench agent gets: fast "Thinking..." so turns measure the engine, not the fake's pause. */
export const AGENT_ENV = { PATH: process.env.PATH, HOME: process.env.HOME, KIRO_FAKE_THINK_MS: '0' };

let counter = 0;
export function threadId(): string {
  counter++;
  return `2${String(Date.now()).slice(-9)}${String(counter).padStart(8, '0')}`;
}

export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i]!;
}

export function tempDir(name: string): string {
  return mkdtempSync(join(tmpdir(), `tw-bench-${name}-`));
}

export interface BenchPool {
  readonly pool: SessionPool;
  readonly store: Store;
  readonly table: ProcessTable;
  readonly root: string;
}

export function makePool(
  overrides: Partial<PoolConfig> = {},
  table = new ProcessTable(),
  sandboxed = false,
  env: Readonly<Record<string, string | undefined>> = AGENT_ENV,
): BenchPool {
  const root = tempDir('pool');
  const bwrap = sandboxed ? findBwrap() : undefined;
  if (sandboxed && !bwrap) throw new Error('bench: bwrap is not installed (Debian package bubblewrap)');
  const store = new Store(join(root, 'tw.db'), { logger: silentLogger() });
  const pool = new SessionPool({
    config: {
      maxSessions: 1000,
      sessionIdleTtlMs: 3_600_000,
      killGraceMs: 500,
      kiroCliPath: fakeKiroPath(),
      kiroArgs: ['chat', '--legacy-ui'],
      trustAllTools: false,
      workspaceRoot: join(root, 'ws'),
      agentEnvPassthrough: [],
      spawnTimeoutMs: 60_000,
      turnQuietMs: 5_000,
      ...overrides,
    },
    logger: silentLogger(),
    table,
    env,
    ...(bwrap && {
      spawnWrapper: new BwrapSandbox({ bwrap, workspaceRoot: join(root, 'ws'), hidden: [root] }),
      sandboxStatus: { mode: 'on' as const, mechanism: 'bwrap' as const },
    }),
  });
  new SessionRecorder({ pool, store });
  return { pool, store, table, root };
}

/** Processes alive now that carry a marker containing `needle` (an instance id or a bench run tag). */
export function markedAlive(needle: string): number[] {
  const out: number[] = [];
  for (const p of scanProcesses()) {
    if (p.state === 'Z' || p.pid === process.pid) continue;
    try {
      const env = readFileSync(`/proc/${p.pid}/environ`, 'utf8');
      if (env.includes(`${MARKER_VAR}=`) && env.includes(needle)) out.push(p.pid);
    } catch {
      // gone or not ours
    }
  }
  return out;
}

/** Kills (SIGKILL) processes by the pids found for a marker needle and waits for them; returns how many there were. */
export async function sweepMarked(needle: string): Promise<number> {
  const pids = markedAlive(needle);
  const ids = pids.map((pid) => ({ pid, start: readProc(pid)?.startTime ?? -1 }));
  for (const { pid } of ids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 5000;
  while (ids.some((i) => isAlive(i.pid, i.start)) && Date.now() < deadline) await sleep(10);
  return pids.length;
}

/** A bare node-pty spawn of the fake agent, as a bridge without threadwarden would do it. */
export function bareSpawn(
  cwd: string,
  env: Record<string, string | undefined>,
): { term: pty.IPty; ready: Promise<void> } {
  const term = pty.spawn(fakeKiroPath(), ['chat', '--legacy-ui'], {
    name: 'xterm-256color',
    cols: 200,
    rows: 50,
    cwd,
    env: Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as Record<string, string>,
  });
  let out = '';
  // Like any terminal, answer the classic UI's start-up cursor-position probes (unanswered, each costs 0.5 s).
  const probes = term.onData((chunk) => {
    if (chunk.includes('\x1b[6n')) term.write('\x1b[1;1R');
    if (out.includes(PROMPT_BYTES)) probes.dispose();
  });
  const ready = new Promise<void>((resolve) => {
    const d = term.onData((chunk) => {
      out += chunk;
      if (out.includes(PROMPT_BYTES)) {
        d.dispose();
        resolve();
      }
    });
  });
  return { term, ready };
}

/** Sends a line to a bare agent and waits for the next prompt. */
export function bareTurn(term: pty.IPty, text: string): Promise<string> {
  return new Promise((resolve) => {
    let out = '';
    const d = term.onData((chunk) => {
      out += chunk;
      if (out.includes('Credits') && PROMPT_END.test(out)) {
        d.dispose();
        resolve(out);
      }
    });
    term.write(`${text}\r`);
  });
}

/** Makes a session's tree hostile: one of the escapes, rotating with `i`. */
export async function hostile(s: AgentSession, i: number): Promise<void> {
  const kinds = ['setsid', 'group', 'doublefork', 'ignoreterm'];
  await s.prompt(`fake:spawn ${kinds[i % kinds.length]}`);
  if (i % 3 === 0) await s.prompt('fake:ignore-term');
}

export function rssMb(): number {
  return process.memoryUsage().rss / 1024 / 1024;
}

export async function settleGc(): Promise<void> {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    gc?.();
    await sleep(50);
  }
}

/** The main thread's scheduler figures: ns on a CPU, ns runnable on a run queue (waiting for a CPU). */
export function schedstat(): { onCpu: number; wait: number } {
  const [onCpu, wait] = readFileSync('/proc/self/schedstat', 'utf8').split(' ').map(Number);
  return { onCpu: onCpu!, wait: wait! };
}

/**
 * Ticks every 5 ms and keeps the longest gap between ticks with the main thread's own figures for it: a stall
 * spent on the CPU is the bot's work, one spent on the run queue is other processes (the agents) holding the CPU.
 */
export function stallProbe(): { stop(): { ms: number; onCpuMs: number; runQueueMs: number } } {
  let last = { t: performance.now(), s: schedstat() };
  let worst = { ms: 0, onCpuMs: 0, runQueueMs: 0 };
  const timer = setInterval(() => {
    const now = { t: performance.now(), s: schedstat() };
    const gap = now.t - last.t;
    if (gap > worst.ms)
      worst = {
        ms: gap,
        onCpuMs: (now.s.onCpu - last.s.onCpu) / 1e6,
        runQueueMs: (now.s.wait - last.s.wait) / 1e6,
      };
    last = now;
  }, 5);
  return {
    stop: () => {
      clearInterval(timer);
      return worst;
    },
  };
}
