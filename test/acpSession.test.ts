import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentSession } from '../src/agent/AgentSession.js';
import type { ResumeOutcome } from '../src/agent/types.js';
import { SpawnFailedError } from '../src/errors.js';
import { silentLogger } from '../src/log/logger.js';
import type { PoolConfig, SessionPoolOptions } from '../src/pool/SessionPool.js';
import { SessionPool } from '../src/pool/SessionPool.js';
import { SessionRecorder } from '../src/store/SessionRecorder.js';
import { PoolHarness, poolConfig, testSandbox, threadId } from './helpers/harness.js';
import { expectAllGone, identify } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

const ACP: Partial<PoolConfig> = { agentProtocol: 'acp', kiroArgs: ['acp'], acpLoadTimeoutMs: 1500 };

let h: PoolHarness | undefined;
const extraPools: SessionPool[] = [];
afterEach(async () => {
  for (const p of extraPools.splice(0)) await p.closeAll('shutdown');
  await h?.disposeChecked();
  h = undefined;
});

function acp(
  overrides: Partial<PoolConfig> = {},
  env: Record<string, string> = {},
  options: Partial<SessionPoolOptions> = {},
) {
  const harness = new PoolHarness({ ...ACP, ...overrides }, options);
  if (Object.keys(env).length > 0) {
    // Rebuild the pool's environment with the switches (the harness's home stays).
    (harness.pool as unknown as { env: Record<string, string | undefined> }).env = {
      PATH: process.env.PATH,
      HOME: harness.home,
      ...env,
    };
  }
  return harness;
}

async function started(harness: PoolHarness, thread = threadId()): Promise<AgentSession> {
  const s = await harness.pool.acquire(thread);
  await s.ready;
  harness.tree(s);
  return s;
}

/** What the fake recorded as having run (kiro commands, tools, permissions). */
function record(harness: PoolHarness): { kind?: string; [k: string]: unknown }[] {
  const file = join(harness.home, '.kiro', 'fake-acp', 'record.jsonl');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));
}

describe('ACP transport: only protocol lines reach the client', () => {
  it('survives garbage, partial and split lines on stdout; the turn still ends with its reply', async () => {
    h = acp();
    const s = await started(h);
    const r = await s.prompt('fake:garbage');
    expect(r.text).toContain('after garbage');
    expect(r.text).not.toContain('[1,2,3]');
    expect(s.recentOutput()).toContain('stdout:');
    const split = await s.prompt('fake:split 30');
    expect(split.stopReason).toBe('end_turn');
    expect(split.text).not.toContain('\uFFFD');
    expect((await s.prompt('still here')).text).toBe('You said: still here');
  });

  it('keeps stderr noise out of the reply and in the log tail', async () => {
    h = acp({}, { KIRO_FAKE_ACP_STDERR_NOISE: '1' });
    const s = await started(h);
    const r = await s.prompt('fake:stderr 30');
    expect(r.text).not.toMatch(/\[INFO\]/);
    expect(s.recentOutput()).toMatch(/INFO|noise/i);
    expect(s.recentOutput().split('\n').length).toBeLessThanOrEqual(40);
  });

  it('drops one 8 MB line over the 1 MiB cap, tells the user, stays responsive and bounded in memory', async () => {
    h = acp();
    const s = await started(h);
    global.gc?.();
    const before = process.memoryUsage().rss;
    let peak = before;
    let worstLag = 0;
    let last = performance.now();
    const sampler = setInterval(() => {
      const now = performance.now();
      worstLag = Math.max(worstLag, now - last - 20);
      last = now;
      peak = Math.max(peak, process.memoryUsage().rss);
    }, 20);
    try {
      const r = await s.prompt('fake:big 8');
      expect(r.text).toContain('big done');
      expect(r.text).toMatch(/over the bot's 1 MiB limit; it was dropped/);
    } finally {
      clearInterval(sampler);
    }
    expect(worstLag).toBeLessThan(1000);
    expect((peak - before) / 1024 / 1024).toBeLessThan(120);
    expect((await s.prompt('after big')).text).toBe('You said: after big');
  });

  it('answers agent requests it does not implement with -32601 at once, and V3 shell_type with bash', async () => {
    h = acp({}, { KIRO_FAKE_ACP_SHELL_TYPE: '1' });
    const s = await started(h);
    const r = await s.prompt('fake:unknown-request');
    expect(r.text).toContain('-32601');
    const shell = await s.prompt('fake:shell-type');
    expect(shell.text).toContain('"shellType":"bash"');
  });
});

describe('ACP transport: start-up and failures', () => {
  it('an agent that never answers initialize fails the start within the spawn timeout, tree gone', async () => {
    h = acp({ spawnTimeoutMs: 1500 }, { KIRO_FAKE_ACP_STARTUP: 'never-initialize' });
    const s = await h.pool.acquire(threadId());
    await waitFor(() => s.pid !== undefined, 'the spawn');
    const tree = h.tree(s);
    const err = (await s.ready.catch((e: unknown) => e)) as SpawnFailedError;
    expect(err).toBeInstanceOf(SpawnFailedError);
    expect(err.message).toMatch(/initialize and session\/new\) within 1500 ms/);
    await expectAllGone(tree);
  });

  it('an agent that exits mid-turn (half a frame on stdout) is crashed; the tail keeps the half frame', async () => {
    h = acp();
    const s = await started(h);
    const tree = h.tree(s);
    const err = await s.prompt('fake:partial-exit').catch((e: unknown) => e);
    expect((err as { reason?: string }).reason).toBe('crashed');
    expect(s.recentOutput()).toContain('stdout: {');
    await expectAllGone(tree);
  });

  it('a prompt the agent refuses ends the turn with the reason, not silence', async () => {
    h = acp();
    const s = await started(h);
    const r = await s.prompt('fake:fail');
    expect(r.text).toContain('fake failure');
    expect(s.state).toBe('idle');
  });

  it('surfaces stop reasons and keeps thoughts out of the reply', async () => {
    h = acp({}, { KIRO_FAKE_ACP_THINKING: '1' });
    const s = await started(h);
    const stop = await s.prompt('fake:stop max_tokens');
    expect(stop.stopReason).toBe('max_tokens');
    const think = await s.prompt('fake:think');
    expect(think.text).not.toMatch(/Let me think|Thinking done/);
    expect(stop.text).not.toMatch(/Let me think|Thinking done/);
    expect((await s.prompt('fake:stop refusal')).stopReason).toBe('refusal');
  });
});

describe('ACP transport: tools and permissions', () => {
  it('a storm of 20 questions at once: each answered from the agent’s own options, all reach the agent', async () => {
    h = acp();
    const s = await started(h);
    let n = 0;
    s.on('permission', (p) => {
      const kind = n++ % 2 === 0 ? 'allow_once' : 'reject_once';
      expect(s.answerPermission(p.requestId, p.options.find((o) => o.kind === kind)!.optionId)).toBe(true);
    });
    const r = await s.prompt('fake:storm 20');
    expect(r.text).toContain('storm: 20 requests, 10 allowed, 10 rejected, 0 cancelled');
    expect(r.tools.length).toBe(20);
    expect(new Set(r.tools.map((t) => t.status))).toEqual(new Set(['completed', 'failed']));
  });

  it('closing the session answers an open question cancelled', async () => {
    h = acp();
    const s = await started(h);
    const resolved: string[] = [];
    s.on('permissionResolved', (r) => resolved.push(r.optionId));
    const asked = new Promise<void>((r) => s.once('permission', () => r()));
    const turn = s.prompt('fake:permission').catch(() => undefined);
    await asked;
    await h.pool.close(s.threadId, 'reset');
    await turn;
    expect(resolved).toEqual(['cancelled']);
  });

  it('/tools trust-all and !rm typed by a user reach the model as text: nothing runs, trust unchanged', async () => {
    h = acp();
    const s = await started(h);
    const before = await s.prompt('fake:state');
    const slash = await s.prompt('/tools trust-all');
    expect(slash.text).toContain('You said:');
    expect(slash.text).toContain('/tools trust-all');
    const bang = await s.prompt('!rm -rf ./precious');
    expect(bang.text).toContain('!rm -rf ./precious');
    const at = await s.prompt('  /exit');
    expect(at.text).toContain('/exit');
    expect((await s.prompt('fake:state')).text).toBe(before.text);
    expect(record(h).filter((e) => e.kind === 'command')).toEqual([]);
    // Still asks: trust did not change.
    const asked = new Promise<void>((r) =>
      s.once('permission', (p) => {
        s.answerPermission(p.requestId, p.options.find((o) => o.kind === 'reject_once')!.optionId);
        r();
      }),
    );
    await s.prompt('fake:permission');
    await asked;
  });

  it('TRUST_ALL_TOOLS passes --trust-all-tools', async () => {
    h = acp({ trustAllTools: true });
    const s = await started(h);
    expect(s.command).toContain('--trust-all-tools');
    let asked = 0;
    s.on('permission', () => asked++);
    const r = await s.prompt('fake:permission');
    expect(r.text).toContain('Ran pwd');
    expect(asked).toBe(0);
  });
});

describe('ACP transport: models and modes', () => {
  it('set_model and set_mode switch, are remembered for the thread, and a bad mode is a readable error', async () => {
    h = acp();
    const s = await started(h);
    const models = s.models()!;
    expect(models.available.length).toBeGreaterThan(1);
    const other = models.available.find((m) => m.id !== models.current)!.id;
    await s.setModel(other);
    expect(s.models()!.current).toBe(other);
    const mode = s.modes()!.available.find((m) => m.id !== s.modes()!.current)!.id;
    await s.setMode(mode);
    expect((await s.prompt('fake:state')).text).toContain(`model=${other} mode=${mode}`);
    await expect(s.setMode('no-such-agent')).rejects.toMatchObject({ code: 'AGENT_ERROR' });
    expect(h.store.threadAgent(s.threadId)).toMatchObject({ modelId: other, modeId: mode });
  });
});

describe('ACP resume: the thread’s next session loads the earlier conversation', () => {
  async function firstSession(harness: PoolHarness, thread: string) {
    const s = await started(harness, thread);
    await s.prompt('remember the word kumquat');
    return s;
  }

  async function resumedOf(harness: PoolHarness | SessionPool, thread: string) {
    const pool = harness instanceof PoolHarness ? harness.pool : harness;
    let outcome: ResumeOutcome | undefined;
    pool.once('sessionCreated', (s) => s.once('resumed', (r) => (outcome = r)));
    const s = await pool.acquire(thread);
    await s.ready;
    if (harness instanceof PoolHarness) harness.tree(s);
    return { s, outcome };
  }

  it.each(['reset', 'idle_ttl'] as const)('after %s', async (reason) => {
    h = acp();
    const thread = threadId();
    const first = await firstSession(h, thread);
    const id = first.agentSessionId;
    await h.pool.close(thread, reason);
    const { s, outcome } = await resumedOf(h, thread);
    expect(outcome).toEqual({ restored: true });
    expect(s.agentSessionId).toBe(id);
    expect((await s.prompt('fake:history')).text).toContain('kumquat');
  });

  it('after eviction, with the chosen model re-applied', async () => {
    h = acp({ maxSessions: 1 });
    const thread = threadId();
    const first = await firstSession(h, thread);
    const model = first.models()!.available.find((m) => m.id !== first.models()!.current)!.id;
    await first.setModel(model);
    await started(h); // another thread evicts the idle first one
    await waitFor(() => h!.row(first.id)?.endReason === 'evicted', 'the eviction');
    const { s, outcome } = await resumedOf(h, thread);
    expect(outcome).toEqual({ restored: true });
    expect((await s.prompt('fake:state')).text).toContain(`model=${model}`);
    expect((await s.prompt('fake:history')).text).toContain('kumquat');
  });

  it('after a bot restart (a new pool on the same database and workspaces)', async () => {
    h = acp();
    const thread = threadId();
    await firstSession(h, thread);
    await h.pool.closeAll('shutdown');
    const pool = new SessionPool({
      config: poolConfig(h.root, ACP),
      logger: silentLogger(),
      table: h.table,
      env: { PATH: process.env.PATH, HOME: h.home },
      // The same sandbox as the first pool: kiro's session files must be where the first agent wrote them.
      ...testSandbox(join(h.root, 'workspaces'), h.root),
      resumeOf: (t) => {
        const row = h!.store.threadAgent(t);
        return row
          ? {
              agentSessionId: row.agentSessionId ?? '',
              modelId: row.modelId ?? undefined,
              modeId: row.modeId ?? undefined,
            }
          : undefined;
      },
    });
    extraPools.push(pool);
    const recorder = new SessionRecorder({ pool, store: h.store });
    const { s, outcome } = await resumedOf(pool, thread);
    h.tree(s);
    expect(outcome).toEqual({ restored: true });
    expect((await s.prompt('fake:history')).text).toContain('kumquat');
    recorder.close();
  });

  it.each([
    ['error', /Session not found/],
    ['hang', /no answer to session\/load within 1500 ms/],
    ['exit', /exited while loading/],
  ] as const)('an unknown session id (%s) falls back to session/new and says why', async (mode, why) => {
    h = acp({}, { KIRO_FAKE_ACP_LOAD_MISSING: mode });
    const thread = threadId();
    const cwd = join(h.root, 'workspaces', thread);
    const stale = randomUUID();
    h.store.recordAgentSession('none', thread, stale, cwd, 'acp');
    h.store.flush();
    const seenPids: number[] = [];
    h.pool.once('sessionCreated', (s) =>
      s.on('spawned', ({ pid }) => {
        seenPids.push(pid);
        h!.seen.push(...identify([pid]));
      }),
    );
    const { s, outcome } = await resumedOf(h, thread);
    expect(outcome?.restored).toBe(false);
    expect(outcome?.reason).toMatch(why);
    expect(s.agentSessionId).not.toBe(stale);
    expect((await s.prompt('fresh start')).text).toBe('You said: fresh start');
    // hang and exit replace the process; the first one's tree is killed (afterEach checks its pids).
    expect(seenPids.length).toBe(mode === 'error' ? 1 : 2);
    expect(h.store.threadAgent(thread)?.agentSessionId).toBe(s.agentSessionId);
  });
});

describe('ACP prompts: attachments', () => {
  it('sends saved files as resource_link blocks and images inline; an attachment-only message is a turn', async () => {
    h = acp();
    const s = await started(h);
    const txt = join(s.cwd, 'notes.txt');
    const png = join(s.cwd, 'pic.png');
    writeFileSync(txt, 'hello');
    writeFileSync(png, Buffer.from([0x89, 0x50, 0x4e, 0x47]));
    const r = await s.prompt({
      text: 'fake:echo',
      attachments: [
        { path: txt, name: 'notes.txt', mimeType: 'text/plain', size: 5 },
        { path: png, name: 'pic.png', mimeType: 'image/png', size: 4 },
      ],
    });
    expect(r.text).toContain('resource_link');
    expect(r.text).toContain('notes.txt');
    expect(r.text).toContain('"image"');
    const only = await s.prompt({
      text: '',
      attachments: [{ path: txt, name: 'notes.txt', mimeType: 'text/plain', size: 5 }],
    });
    expect(only.text).toContain('resource_link notes.txt');
  });
});
