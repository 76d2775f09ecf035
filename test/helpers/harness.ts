import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { AgentSession } from '../../src/agent/AgentSession.js';
import { silentLogger } from '../../src/log/logger.js';
import { fakeKiroPath } from '../../src/paths.js';
import { type PoolConfig, SessionPool, type SessionPoolOptions } from '../../src/pool/SessionPool.js';
import { ProcessTable, treeMembers } from '../../src/process/ProcessTable.js';
import { BwrapSandbox } from '../../src/process/sandbox/BwrapSandbox.js';
import { findBwrap } from '../../src/process/sandbox/probeSandbox.js';
import { SessionRecorder } from '../../src/store/SessionRecorder.js';
import { Store } from '../../src/store/Store.js';
import { alive, identify, killAll, type Pid } from './processes.js';

let counter = 0;
/** A fresh 18-digit thread id. */
export function threadId(): string {
  counter++;
  return `1${String(Date.now()).slice(-9)}${String(counter).padStart(8, '0')}`;
}

export function poolConfig(root: string, overrides: Partial<PoolConfig> = {}): PoolConfig {
  return {
    maxSessions: 5,
    sessionIdleTtlMs: 60_000,
    killGraceMs: 500,
    kiroCliPath: fakeKiroPath(),
    kiroArgs: ['chat', '--legacy-ui'],
    trustAllTools: false,
    workspaceRoot: join(root, 'workspaces'),
    agentEnvPassthrough: [],
    spawnTimeoutMs: 15_000,
    turnQuietMs: 5_000,
    ...overrides,
  };
}

/**
 * The sandbox the pool tests run their agents in: bwrap where installed (CI installs it), hiding the test's
 * database directory, as AGENT_SANDBOX=auto does for the bot. TW_TEST_SANDBOX=off runs them unsandboxed.
 */
export function testSandbox(workspaceRoot: string, hidden: string): Partial<SessionPoolOptions> {
  const bwrap = process.env.TW_TEST_SANDBOX === 'off' ? undefined : findBwrap();
  if (!bwrap) return {};
  return {
    spawnWrapper: new BwrapSandbox({ bwrap, workspaceRoot, hidden: [hidden] }),
    sandboxStatus: { mode: 'auto', mechanism: 'bwrap' },
  };
}

/** A pool on the fake agent with a real SQLite file in a temporary directory; `dispose()` ends everything. */
export class PoolHarness {
  readonly root = mkdtempSync(join(tmpdir(), 'tw-pool-'));
  readonly store = new Store(join(this.root, 'tw.db'), { logger: silentLogger() });
  readonly table = new ProcessTable();
  /** $HOME of the agents (the ACP fake's session store lives under it). */
  readonly home = join(this.root, 'home');
  readonly pool: SessionPool;
  readonly recorder: SessionRecorder;
  /** Every pid the tests saw in a tree, for the final check that nothing survives. */
  readonly seen: Pid[] = [];

  constructor(overrides: Partial<PoolConfig> = {}, options: Partial<SessionPoolOptions> = {}) {
    const config = poolConfig(this.root, overrides);
    mkdirSync(this.home, { recursive: true });
    this.pool = new SessionPool({
      config,
      logger: silentLogger(),
      table: this.table,
      // The fake keeps kiro's session files under $HOME/.kiro: a home of the test's own, never the user's.
      env: { PATH: process.env.PATH, HOME: this.home, DISCORD_TOKEN: 'secret-token-value' },
      // Like the bot (AGENT_SANDBOX=auto): every agent in a bwrap sandbox where bwrap is installed.
      ...testSandbox(config.workspaceRoot, this.root),
      // Like App: the thread's earlier ACP session and choices come from the store.
      resumeOf: (threadId, cwd) => {
        const row = this.store.threadAgent(threadId);
        if (!row) return undefined;
        return {
          agentSessionId: row.cwd === cwd ? (row.agentSessionId ?? '') : '',
          modelId: row.modelId ?? undefined,
          modeId: row.modeId ?? undefined,
        };
      },
      ...options,
    });
    this.recorder = new SessionRecorder({ pool: this.pool, store: this.store });
  }

  /** The live processes of a session's tree right now (pid + start time), remembered for the final check. */
  tree(session: AgentSession): Pid[] {
    if (session.pid === undefined || session.pidStartTime === undefined) return [];
    const members = treeMembers(this.table.scan(this.table.timestamp()), {
      pid: session.pid,
      startTime: session.pidStartTime,
      marker: session.marker,
    }).filter((p) => p.state !== 'Z');
    const pids = identify(members.map((m) => m.pid));
    this.seen.push(...pids);
    return pids;
  }

  row(sessionId: string) {
    return this.store.history({ limit: 1000 }).find((r) => r.id === sessionId);
  }

  async dispose(): Promise<void> {
    await this.pool.closeAll('shutdown');
    this.recorder.close();
    this.store.close();
    rmSync(this.root, { recursive: true, force: true });
  }

  /** `dispose()`, then the check every pool test ends with: no pid it saw survives (any left are killed first). */
  async disposeChecked(): Promise<void> {
    await this.dispose();
    const left = alive(this.seen);
    await killAll(this.seen);
    expect(left, 'processes left after the pool closed').toEqual([]);
  }
}
