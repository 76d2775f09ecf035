import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type Client, ClientSideConnection, ndJsonStream } from '@agentclientprotocol/sdk';
import type { AgentSession } from '../src/agent/AgentSession.js';
import { fakeKiroPath } from '../src/paths.js';
import { MARKER_VAR } from '../src/process/procfs.js';
import {
  AGENT_ENV,
  makePool,
  percentile,
  rssMb,
  schedstat,
  settleGc,
  stallProbe,
  sweepMarked,
  tempDir,
  threadId,
} from './lib.js';

/** The ACP fake's environment for both sides: no MCP servers (start-up only, not the measured path), quiet stderr. */
export const ACP_ENV = { ...AGENT_ENV, KIRO_FAKE_ACP_MCP: '0', KIRO_FAKE_ACP_QUIET: '1' };

/** A bare ACP client, as a bridge without threadwarden would write it: the SDK straight on a spawned fake. */
export interface BareAcp {
  readonly child: ChildProcess;
  /** Sends `text` and resolves with the ms from the call to the first agent_message_chunk text. */
  firstChunk(text: string): Promise<number>;
  close(): Promise<void>;
}

export async function bareAcp(cwd: string, env: Record<string, string | undefined>): Promise<BareAcp> {
  mkdirSync(cwd, { recursive: true });
  const child = spawn(fakeKiroPath(), ['acp'], {
    cwd,
    env: Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined)) as Record<string, string>,
    stdio: ['pipe', 'pipe', process.env.TW_BENCH_STDERR ? 'inherit' : 'ignore'],
  });
  let onChunk: (() => void) | undefined;
  const client: Client = {
    requestPermission: async () => ({ outcome: { outcome: 'cancelled' } }),
    sessionUpdate: async (n) => {
      const u = n.update as { sessionUpdate: string; content?: { type?: string; text?: string } };
      if (u.sessionUpdate === 'agent_message_chunk' && u.content?.type === 'text' && u.content.text) {
        const f = onChunk;
        onChunk = undefined;
        f?.();
      }
    },
  };
  // Plain web streams over the pipes (Readable.toWeb errors its stream with an AbortError nobody awaits when the
  // agent's stdout closes at the end, which failed a full bench run).
  let input!: ReadableStreamDefaultController<Uint8Array>;
  const readable = new ReadableStream<Uint8Array>({
    start: (c) => {
      input = c;
    },
  });
  child.stdout!.on('data', (d: Buffer) => input.enqueue(new Uint8Array(d)));
  child.stdout!.once('close', () => {
    try {
      input.close();
    } catch {
      // already closed
    }
  });
  const writable = new WritableStream<Uint8Array>({
    write: (chunk) => {
      if (child.stdin?.writable) child.stdin.write(chunk);
    },
  });
  const conn = new ClientSideConnection(() => client, ndJsonStream(writable, readable));
  await conn.initialize({ protocolVersion: 1, clientCapabilities: {} });
  const { sessionId } = await conn.newSession({ cwd, mcpServers: [] });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    firstChunk: async (text) => {
      const t0 = performance.now();
      let ms = Number.NaN;
      onChunk = () => {
        ms = performance.now() - t0;
      };
      await conn.prompt({ sessionId, prompt: [{ type: 'text', text }] });
      onChunk = undefined;
      if (Number.isNaN(ms)) throw new Error('bare turn ended without a text chunk');
      return ms;
    },
    close: async () => {
      child.stdin?.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** From `prompt()` to the session's first 'activity' carrying reply text; resolves when the turn has ended too. */
export async function botFirstChunk(s: AgentSession, text: string): Promise<number> {
  const t0 = performance.now();
  let ms = Number.NaN;
  const onActivity = () => {
    if (Number.isNaN(ms) && s.partial() !== '') {
      ms = performance.now() - t0;
      s.off('activity', onActivity);
    }
  };
  s.on('activity', onActivity);
  const turn = s.prompt(text);
  await turn;
  s.off('activity', onActivity);
  if (Number.isNaN(ms)) throw new Error('bot turn ended without a text chunk');
  return ms;
}

export interface FirstReply {
  samples: number;
  chunkMs: number;
  bot: { p50: number; p99: number };
  bare: { p50: number; p99: number };
  ratioP50: number;
  addedP50Ms: number;
}

/** Bot (pool + AgentSession over ACP) against the bare SDK client on the same fake, turns interleaved. */
export async function acpFirstReply(m: number): Promise<FirstReply> {
  const chunkMs = 5;
  const env = { ...ACP_ENV, KIRO_FAKE_ACP_CHUNK_MS: String(chunkMs) };
  const bp = makePool(
    { agentProtocol: 'acp', kiroArgs: ['acp'], acpLoadTimeoutMs: 15_000 },
    undefined,
    false,
    env,
  );
  const dir = tempDir('acp-bare');
  // The bot's agents get TERM and a marker too (agentEnv.ts): the bare agent gets the same, so the sweep finds it.
  const tag = `bench-acp-bare-${process.pid}-${Date.now()}`;
  const bare = await bareAcp(join(dir, 'ws'), { ...env, TERM: 'xterm-256color', [MARKER_VAR]: tag });
  const s = await bp.pool.acquire(threadId());
  await s.ready;
  const bot: number[] = [];
  const raw: number[] = [];
  try {
    // Warm both paths (JIT, first frames) before counting.
    for (let i = 0; i < 5; i++) {
      await botFirstChunk(s, `warm ${i} with a reply of a few chunks`);
      await bare.firstChunk(`warm ${i} with a reply of a few chunks`);
    }
    for (let i = 0; i < m; i++) {
      const text = `turn ${i}: reply with a few chunks of text please`;
      // Alternate which side goes first, so drift and load hit both alike.
      if (i % 2 === 0) {
        bot.push(await botFirstChunk(s, text));
        raw.push(await bare.firstChunk(text));
      } else {
        raw.push(await bare.firstChunk(text));
        bot.push(await botFirstChunk(s, text));
      }
    }
  } finally {
    await bare.close();
    await sweepMarked(tag);
    await bp.pool.closeAll('shutdown');
    await sweepMarked(bp.pool.instanceId);
    bp.store.close();
    rmSync(bp.root, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
  const b50 = percentile(bot, 50);
  const r50 = percentile(raw, 50);
  return {
    samples: m,
    chunkMs,
    bot: { p50: b50, p99: percentile(bot, 99) },
    bare: { p50: r50, p99: percentile(raw, 99) },
    ratioP50: b50 / r50,
    addedP50Ms: b50 - r50,
  };
}

export interface Streaming {
  sessions: number;
  /** AGENT_NICE of the agents (0: the bot's own priority). */
  agentNice: number;
  chunksPerTurn: number;
  chunkMs: number;
  lagP99Ms: number;
  lagMaxMs: number;
  /** The bot's CPU over the window, % of one core. */
  botCpuPercent: number;
  /** The whole machine's CPU busy over the window (/proc/stat), % of all cores: the fakes share the 2 cores. */
  boxBusyPercent: number;
  /** Only while chunks arrive (to the last chunk event), without the turn ends. */
  streamLagP99Ms: number;
  streamLagMaxMs: number;
  /** From the last chunk's arrival to the last turn's end (every turnEnd's own work). */
  lastChunkToLastTurnEndMs: number;
  rssIdleMb: number;
  rssPeakMb: number;
  rssPerSessionMb: number;
  /** One fresh ProcessTable scan with every session live, p50 of 5, and the processes it saw. */
  procScanP50Ms: number;
  procScanProcesses: number;
  chunksProduced: number;
  chunksDelivered: number;
  chunkEvents: number;
  streamSeconds: number;
  /** The bot's main thread over the window (/proc/self/schedstat): ms on a CPU and ms runnable but waiting for one. */
  mainOnCpuMs: number;
  mainRunQueueMs: number;
  /** The longest loop stall (gap between 5 ms probe ticks) and how much of it the main thread ran or waited. */
  longestStall: { ms: number; onCpuMs: number; runQueueMs: number };
  /** CPU the agents' processes used over the window (every process carrying the pool's marker), core-seconds. */
  agentCpuSeconds: number;
  /** CPU of everything else on the box over the window (busy time less the bot's and the agents'), core-seconds. */
  otherCpuSeconds: number;
}

/** CPU ticks of every process carrying a marker that contains `needle`. */
function markedTicks(
  table: { scan(): readonly { marker: string | undefined; cpuTicks: number }[] },
  needle: string,
): number {
  let ticks = 0;
  for (const p of table.scan()) if (p.marker?.includes(needle)) ticks += p.cpuTicks;
  return ticks;
}

/**
 * TW_BENCH_CPU_PROFILE=<file>: a V8 CPU profile of the bot over the measured window only (not the spawns before
 * it), written as <file>-nice<N>.cpuprofile (open it in Chrome DevTools, or read its self times).
 */
async function windowProfiler(nice: number): Promise<{ stop(): Promise<void> }> {
  const file = process.env.TW_BENCH_CPU_PROFILE;
  if (!file) return { stop: async () => undefined };
  const { Session } = await import('node:inspector/promises');
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.setSamplingInterval', { interval: 200 });
  await session.post('Profiler.start');
  return {
    stop: async () => {
      const { profile } = await session.post('Profiler.stop');
      writeFileSync(`${file}-nice${nice}.cpuprofile`, JSON.stringify(profile));
      session.disconnect();
    },
  };
}

/** Clock ticks per second of /proc/<pid>/stat times (USER_HZ, 100 on Linux). */
const CLK_TCK = 100;

/** S ACP sessions stream `fake:stream N` at once; lag, RSS beyond idle per session, chunks counted. */
export async function acpStreaming(sessions: number, chunks: number, agentNice = 0): Promise<Streaming> {
  const chunkMs = 20;
  const env = { ...ACP_ENV, KIRO_FAKE_ACP_CHUNK_MS: String(chunkMs) };
  const bp = makePool(
    {
      agentProtocol: 'acp',
      kiroArgs: ['acp'],
      acpLoadTimeoutMs: 60_000,
      maxSessions: sessions + 10,
      agentNice,
    },
    undefined,
    false,
    env,
  );
  try {
    await settleGc();
    const idleRss = rssMb();
    const all: AgentSession[] = [];
    let next = 0;
    await Promise.all(
      Array.from({ length: 8 }, async () => {
        while (next < sessions) {
          next++;
          const s = await bp.pool.acquire(threadId());
          await s.ready;
          all.push(s);
        }
      }),
    );
    // Two windows: while chunks stream (until the last chunk event), and the whole run to the last turn's end.
    const produced = sessions * chunks;
    const streamLag = monitorEventLoopDelay({ resolution: 10 });
    let lastChunkAt = Number.NaN;
    let chunkEvents = 0;
    let scanProcs = 0;
    for (const s of all)
      s.on('activity', () => {
        if (++chunkEvents === produced) {
          streamLag.disable();
          lastChunkAt = performance.now();
        }
      });
    const lag = monitorEventLoopDelay({ resolution: 10 });
    let peakRss = rssMb();
    const sampler = setInterval(() => {
      peakRss = Math.max(peakRss, rssMb());
    }, 100);
    const profiler = await windowProfiler(agentNice);
    const agents0 = markedTicks(bp.table, bp.pool.instanceId);
    lag.enable();
    streamLag.enable();
    const probe = stallProbe();
    const cpu0 = process.cpuUsage();
    const box0 = boxCpu();
    const sched0 = schedstat();
    const t0 = performance.now();
    const turns = await Promise.all(all.map((s) => s.prompt(`fake:stream ${chunks}`)));
    const tEnd = performance.now();
    const sched1 = schedstat();
    const cpu = process.cpuUsage(cpu0);
    const box1 = boxCpu();
    const longestStall = probe.stop();
    const agentCpuSeconds = (markedTicks(bp.table, bp.pool.instanceId) - agents0) / CLK_TCK;
    await profiler.stop();
    const streamSeconds = (tEnd - t0) / 1000;
    lag.disable();
    streamLag.disable();
    clearInterval(sampler);
    peakRss = Math.max(peakRss, rssMb());
    // The cost of one fresh /proc scan with every session live: AgentSession takes one, synchronously, at each turn's
    // end (snapshotMembers), so S turns ending together block the loop about S times this.
    const scans: number[] = [];
    for (let i = 0; i < 5; i++) {
      const ts = performance.now();
      const procs = bp.table.scan().length;
      scans.push(performance.now() - ts);
      scanProcs = procs;
    }
    // Delivered: each session's reply holds chunk 000000..N-1 exactly once, in order.
    let delivered = 0;
    for (const t of turns) {
      const got = t.text.split('\n').filter((l) => /^chunk \d{6}$/.test(l));
      got.forEach((l, i) => {
        if (l === `chunk ${String(i).padStart(6, '0')}`) delivered++;
      });
    }
    return {
      sessions,
      agentNice,
      chunksPerTurn: chunks,
      chunkMs,
      lagP99Ms: lag.percentile(99) / 1e6,
      lagMaxMs: lag.max / 1e6,
      botCpuPercent: ((cpu.user + cpu.system) / 1000 / (tEnd - t0)) * 100,
      boxBusyPercent: ((box1.busy - box0.busy) / (box1.total - box0.total)) * 100,
      streamLagP99Ms: streamLag.percentile(99) / 1e6,
      streamLagMaxMs: streamLag.max / 1e6,
      lastChunkToLastTurnEndMs: tEnd - lastChunkAt,
      rssIdleMb: idleRss,
      rssPeakMb: peakRss,
      rssPerSessionMb: (peakRss - idleRss) / sessions,
      procScanP50Ms: percentile(scans, 50),
      procScanProcesses: scanProcs,
      chunksProduced: sessions * chunks,
      chunksDelivered: delivered,
      chunkEvents,
      streamSeconds,
      mainOnCpuMs: (sched1.onCpu - sched0.onCpu) / 1e6,
      mainRunQueueMs: (sched1.wait - sched0.wait) / 1e6,
      longestStall,
      agentCpuSeconds,
      otherCpuSeconds: Math.max(
        0,
        (box1.busy - box0.busy) / CLK_TCK - agentCpuSeconds - (cpu.user + cpu.system) / 1e6,
      ),
    };
  } finally {
    await bp.pool.closeAll('shutdown');
    await sweepMarked(bp.pool.instanceId);
    bp.store.close();
    rmSync(bp.root, { recursive: true, force: true });
  }
}

/** Jiffies of the whole machine from /proc/stat: busy (all but idle and iowait) and total. */
function boxCpu(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}
