import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentSession } from '../src/agent/AgentSession.js';
import { SessionClosedError, SpawnFailedError } from '../src/errors.js';
import { fakeKiroPath } from '../src/paths.js';
import type { PoolConfig, SessionPoolOptions } from '../src/pool/SessionPool.js';
import { PoolHarness, threadId } from './helpers/harness.js';
import { reportedHostPids } from './helpers/namespace.js';
import { expectAllGone, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

let h: PoolHarness | undefined;
afterEach(async () => {
  await h?.disposeChecked();
  h = undefined;
});

/** Host pids of the pids the fake reports ("spawned setsid 17"); inside a sandbox those are its namespace's. */
function reportedPids(text: string, s: AgentSession): Pid[] {
  const tree = h!.tree(s).map((p) => p.pid);
  return reportedHostPids((text.match(/\b\d{1,7}\b/g) ?? []).map(Number), tree);
}

/** What differs per protocol: how to reach it, and the fake's spelling of a few behaviours. */
const PROTOCOLS = {
  classic: {
    config: {},
    slow: 'fake:slow-reply 3 50',
    notLoggedIn: { KIRO_FAKE_STARTUP: 'not-logged-in', KIRO_FAKE_VERSION: '1' },
    notLoggedInWords: 'You are not logged in',
    asks: ['Allow this action?', '[y/n/t]:'],
    trustState: ['fake:trust', 'trust-all false; trusted none'],
  },
  acp: {
    config: { agentProtocol: 'acp', kiroArgs: ['acp'] },
    slow: 'fake:slow 3 50',
    notLoggedIn: { KIRO_FAKE_ACP_LOGGED_OUT: '1' },
    notLoggedInWords: 'kiro-cli login',
    asks: ['Running: pwd', 'Running: pwd'],
    trustState: ['fake:state', 'trust all=false tools=-'],
  },
} as const satisfies Record<string, { config: Partial<PoolConfig> } & Record<string, unknown>>;

describe.each(Object.keys(PROTOCOLS) as (keyof typeof PROTOCOLS)[])(
  'AgentSession over %s with the fake kiro-cli',
  (protocol) => {
    const P = PROTOCOLS[protocol];
    const harness = (overrides: Partial<PoolConfig> = {}, options: Partial<SessionPoolOptions> = {}) =>
      new PoolHarness({ ...P.config, ...overrides }, options);

    it('starts, reaches the prompt and answers a turn', async () => {
      h = harness();
      const s = await h.pool.acquire(threadId());
      await s.ready;
      expect(s.state).toBe('idle');
      const r = await s.prompt('hello agent');
      expect(r.text).toBe('You said: hello agent');
      expect(r.cancelled).toBe(false);
      expect(s.state).toBe('idle');
      const row = h.row(s.id)!;
      expect(row.pid).toBe(s.pid);
      expect(row.readyAt).not.toBeNull();
      expect(row.turns).toBe(1);
    });

    it('sends a multi-line message as one turn', async () => {
      h = harness();
      const s = await h.pool.acquire(threadId());
      const r = await s.prompt('fake:echo\nline one\nline two');
      expect(r.text).toContain(JSON.stringify('fake:echo\nline one\nline two').slice(1, -1));
      expect(h.row(s.id)!.turns).toBe(1);
    });

    it('queues messages sent during a turn and answers them in order', async () => {
      h = harness();
      const s = await h.pool.acquire(threadId());
      const replies = await Promise.all([s.prompt(P.slow), s.prompt('second'), s.prompt('third')]);
      expect(replies.map((r) => r.turnId)).toEqual([1, 2, 3]);
      expect(replies[1]!.text).toBe('You said: second');
      expect(replies[2]!.text).toBe('You said: third');
    });

    it('never lets control characters or escape sequences act as keystrokes', async () => {
      h = harness();
      const s = await h.pool.acquire(threadId());
      const r = await s.prompt('fake:echo a\x03b\x1b[201~c\x00d\x04e\u202Ef👍');
      expect(r.text).toContain(JSON.stringify('fake:echo ab[201~cde\u202Ef👍').slice(1, -1));
      expect(s.state).toBe('idle');
    });

    it('a kiro-cli that refuses an argument fails the start with its own words (an older kiro and --agent-engine)', async () => {
      const args = [...(protocol === 'acp' ? ['acp'] : ['chat', '--legacy-ui']), '--no-such-flag'];
      h = harness({ kiroArgs: args });
      const err = await h.pool
        .acquire(threadId())
        .then((s) => s.ready)
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SpawnFailedError);
      expect((err as SpawnFailedError).message).toContain('exited with code 2');
      expect((err as SpawnFailedError).output).toContain("error: unexpected argument '--no-such-flag' found");
    });

    it('TRUST_ALL_TOOLS approves once by itself a question the agent still makes: nothing surfaced, trust not widened', async () => {
      // The wrapper drops --trust-all-tools, so the fake asks as an agent would for a tool outside its trust.
      h = harness({
        trustAllTools: true,
        kiroCliPath: join(dirname(fakeKiroPath()), 'kiro-cli-asks-anyway'),
      });
      const s = await h.pool.acquire(threadId());
      await s.ready;
      expect(s.command).toContain('--trust-all-tools');
      let asked = 0;
      s.on('permission', () => asked++);
      expect((await s.prompt('fake:permission')).text).toContain('Ran pwd');
      expect((await s.prompt('fake:permission')).text).toContain('Ran pwd');
      expect(asked).toBe(0);
      // Approved once each time, never "always": the agent's own trust is what it was.
      expect((await s.prompt(P.trustState[0])).text).toContain(P.trustState[1]);
    });

    it('surfaces the permission prompt and writes the answer', async () => {
      h = harness();
      const s = await h.pool.acquire(threadId());
      const asked = new Promise<string>((resolve) => s.once('permission', (p) => resolve(p.title)));
      const turn = s.prompt('fake:permission');
      expect(await asked).toContain(P.asks[1]);
      const q = s.pendingPermission!;
      expect(q.title).toContain(P.asks[0]);
      expect(q.options.map((o) => o.kind)).toEqual(['allow_once', 'allow_always', 'reject_once']);
      const allow = q.options.find((o) => o.kind === 'allow_once')!.optionId;
      expect(s.answerPermission(q.requestId, allow)).toBe(true);
      expect(s.answerPermission(q.requestId, allow)).toBe(false);
      const r = await turn;
      expect(r.text).toContain('Ran pwd');
      const denied = new Promise<void>((resolve) => s.once('permission', () => resolve()));
      const turn2 = s.prompt('fake:permission');
      await denied;
      const q2 = s.pendingPermission!;
      expect(s.answerPermission(q2.requestId, 'not-an-option')).toBe(false);
      s.answerPermission(q2.requestId, q2.options.find((o) => o.kind === 'reject_once')!.optionId);
      expect((await turn2).text).toContain('Tool use was denied.');
    });

    it('cancels a hanging turn with Ctrl-C', async () => {
      h = harness();
      const s = await h.pool.acquire(threadId());
      const turn = s.prompt('fake:hang');
      await waitFor(() => s.state === 'busy' && s.currentTurnId === 1, 'the turn to start');
      expect(s.cancel()).toBe(true);
      const r = await turn;
      expect(r.cancelled).toBe(true);
      expect(s.state).toBe('idle');
      expect((await s.prompt('still there?')).text).toBe('You said: still there?');
    });

    it('cancels a turn whose cancel comes before the agent has taken its text', async () => {
      h = harness();
      const s = await h.pool.acquire(threadId());
      // Forced interleaving: the cancel follows the typed text at once, while the agent still reads it.
      s.once('turnStart', () => queueMicrotask(() => expect(s.cancel()).toBe(true)));
      const r = await s.prompt('fake:hang');
      expect(r.cancelled).toBe(true);
      expect(s.state).toBe('idle');
      expect((await s.prompt('still there?')).text).toBe('You said: still there?');
    });

    it.skipIf(protocol !== 'classic')(
      'ends a turn by the quiet-period fallback when the cursor leaves the prompt line',
      async () => {
        h = harness({ turnQuietMs: 300 });
        const s = await h.pool.acquire(threadId());
        const t0 = performance.now();
        const r = await s.prompt('fake:odd-prompt');
        expect(r.text).toBe('odd prompt coming');
        expect(performance.now() - t0).toBeGreaterThanOrEqual(300);
        expect((await s.prompt('next')).text).toBe('You said: next');
      },
    );

    it('keeps the environment to the allowlist: no DISCORD_TOKEN anywhere in the tree', async () => {
      h = harness();
      const s = await h.pool.acquire(threadId());
      const r = await s.prompt('fake:env');
      expect(r.text).not.toContain('DISCORD_TOKEN');
      expect(r.text).not.toContain('secret-token-value');
      expect(r.text).toContain('THREADWARDEN_MARKER=');
      const spawned = await s.prompt('fake:spawn setsid');
      const tree = [...h.tree(s), ...reportedPids(spawned.text, s)];
      expect(tree.length).toBeGreaterThanOrEqual(3);
      for (const p of tree) {
        const env = readFileSync(`/proc/${p.pid}/environ`, 'utf8');
        expect(env).not.toContain('DISCORD_TOKEN');
        expect(env).not.toContain('secret-token-value');
      }
    });

    it('gives no agent another session’s pty master or any descriptor of the bot', async () => {
      h = harness();
      const sessions = await Promise.all([1, 2, 3].map(() => h!.pool.acquire(threadId())));
      await Promise.all(sessions.map((s) => s.ready));
      const botFds = new Set(
        readdirSync('/proc/self/fd').flatMap((fd) => {
          try {
            return [readlinkSync(`/proc/self/fd/${fd}`)];
          } catch {
            return [];
          }
        }),
      );
      let checked = 0;
      for (const s of sessions) {
        // Over pipes the agent's own stdio is the bot's end of the same pipe: that one, and only that one, is shared.
        const own = new Set(
          [0, 1, 2].flatMap((fd) => {
            try {
              return [readlinkSync(`/proc/${s.pid}/fd/${fd}`)];
            } catch {
              return [];
            }
          }),
        );
        for (const p of h.tree(s)) {
          for (const fd of readdirSync(`/proc/${p.pid}/fd`)) {
            let target: string;
            try {
              target = readlinkSync(`/proc/${p.pid}/fd/${fd}`);
            } catch {
              continue;
            }
            checked++;
            expect(target, `pid ${p.pid} fd ${fd}`).not.toBe('/dev/ptmx');
            if (
              target.startsWith('pipe:') ||
              target.startsWith('socket:') ||
              target.startsWith('anon_inode:')
            ) {
              expect(
                botFds.has(target) && !target.startsWith('anon_inode:') && !own.has(target),
                `pid ${p.pid} fd ${fd} -> ${target}`,
              ).toBe(false);
            }
          }
        }
      }
      expect(checked).toBeGreaterThan(6);
    });

    it.skipIf(protocol !== 'classic')(
      'keeps memory bounded while the agent floods 50 MB of output',
      async () => {
        h = harness({}, { sessionOptions: { maxTurnChars: 100_000 } });
        const s = await h.pool.acquire(threadId());
        await s.ready;
        global.gc?.();
        const before = process.memoryUsage().rss;
        let peak = before;
        const sampler = setInterval(() => {
          peak = Math.max(peak, process.memoryUsage().rss);
        }, 50);
        try {
          const r = await s.prompt('fake:flood 50');
          expect(r.text.length).toBeLessThanOrEqual(110_000);
          expect(r.text).toMatch(/lines of output omitted/);
        } finally {
          clearInterval(sampler);
        }
        const growthMb = (peak - before) / 1024 / 1024;
        expect(growthMb).toBeLessThan(150);
      },
      120_000,
    );

    it('reports a missing executable as spawn_failed with a clear message', async () => {
      h = harness({ kiroCliPath: '/nonexistent/kiro-cli' });
      const s = await h.pool.acquire(threadId());
      const err = await s.ready.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(SpawnFailedError);
      expect((err as SpawnFailedError).output).toContain('was not found');
      await waitFor(() => h!.row(s.id)?.endReason === 'spawn_failed', 'the spawn_failed row');
    });

    it('reports "not logged in" (classic: kiro-cli 1.x, which exits 1) as spawn_failed and keeps the agent’s words', async () => {
      h = harness({}, { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...P.notLoggedIn } });
      const s = await h.pool.acquire(threadId());
      const err = (await s.ready.catch((e: unknown) => e)) as SpawnFailedError;
      expect(err).toBeInstanceOf(SpawnFailedError);
      expect(err.output).toContain('not logged in');
      expect(err.output).toContain('kiro-cli login');
      const row = await waitFor(() => {
        const r = h!.row(s.id);
        return r?.endReason ? r : undefined;
      }, 'the row to close');
      expect(row.endReason).toBe('spawn_failed');
      // Classic kiro exits 1; over ACP a logged-out kiro still starts, and the bot ends it at initialize.
      if (protocol === 'classic') expect(row.exitCode).toBe(1);
      expect(row.lastOutput).toContain(P.notLoggedInWords);
    });

    it('records an agent that dies mid-turn as crashed and kills what it left behind', async () => {
      h = harness();
      const s = await h.pool.acquire(threadId());
      const spawned = await s.prompt('fake:spawn setsid');
      const tree = [...h.tree(s), ...reportedPids(spawned.text, s)];
      const err = await s.prompt('fake:crash').catch((e: unknown) => e);
      expect(err).toBeInstanceOf(SessionClosedError);
      expect((err as SessionClosedError).reason).toBe('crashed');
      // Classic: the screen's last lines; ACP: 'partial output' was reply text, the tail holds the agent's log lines.
      if (protocol === 'classic') expect((err as SessionClosedError).output).toContain('partial output');
      else expect(s.closeReason).toBe('crashed');
      await expectAllGone(tree);
      await waitFor(() => h!.row(s.id)?.endReason === 'crashed', 'the crashed row');
    });
  },
);
