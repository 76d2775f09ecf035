import type { ClientOptions } from 'discord.js';
import type { AgentSession } from '../agent/AgentSession.js';
import type { AcpResume } from '../agent/acp/AcpTransport.js';
import type { Config } from '../config/Config.js';
import { DiscordBridge, type DiscordBridgeOptions } from '../discord/DiscordBridge.js';
import { HttpServer } from '../http/HttpServer.js';
import type { Logger } from '../log/logger.js';
import { Metrics } from '../metrics/Metrics.js';
import { ResourceMonitor } from '../monitor/ResourceMonitor.js';
import { type ReapResult, reapOrphans } from '../pool/Reaper.js';
import { SessionPool } from '../pool/SessionPool.js';
import type { Marker } from '../process/marker.js';
import { ProcessTable } from '../process/ProcessTable.js';
import { type ResolvedSandbox, resolveSandbox } from '../process/sandbox/resolveSandbox.js';
import { SessionRecorder } from '../store/SessionRecorder.js';
import { Store } from '../store/Store.js';
import { InstanceLock } from './InstanceLock.js';

/** The thread's earlier ACP session and its users' choices; a session of another workspace is not loaded. */
function resumeOf(store: Store, threadId: string, cwd: string): AcpResume | undefined {
  const row = store.threadAgent(threadId);
  if (!row) return undefined;
  return {
    agentSessionId: row.cwd === cwd ? (row.agentSessionId ?? '') : '',
    modelId: row.modelId ?? undefined,
    modeId: row.modeId ?? undefined,
  };
}

export interface AppOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Where the agent's environment allowlist reads from; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Extra discord.js client options (tests pass a no-op identify throttler). */
  readonly clientOptions?: Partial<ClientOptions>;
  readonly editIntervalMs?: number;
  /** Wall clock of the Discord bridge's reply streams (tests move it with the emulator's). */
  readonly discordClock?: () => number;
  /** Test hook of the Discord bridge: awaited at each step of handling a message (DiscordBridgeOptions.onStep). */
  readonly onMessageStep?: DiscordBridgeOptions['onStep'];
  /** This instance's id in its agents' markers; default a random UUID. */
  readonly instanceId?: string;
  /** Which earlier instances' leftovers the start-up reaper may end; default all (see ReapOptions.owns). */
  readonly reapScope?: (marker: Marker) => boolean;
  /** Called with the instance as soon as it exists, before it connects: a forced exit during start-up needs its pool. */
  readonly onCreated?: (app: App) => void;
}

/** The step of a shutdown that is running, in order; `done` once the lock is released. */
export type ShutdownStep = 'sessions' | 'http' | 'discord' | 'database' | 'done';

/** Where a shutdown stands: for the log line of a shutdown that missed its deadline. */
export interface ShutdownProgress {
  /** `start-up`: the signal came while the instance was still starting, its shutdown has not begun. */
  readonly step: ShutdownStep | 'start-up';
  /** Sessions whose tree is not gone yet (live or being torn down). */
  readonly sessions: readonly { threadId: string; pid: number | undefined; state: string }[];
}

/**
 * One bot instance: lock, database, reaper, pool, monitor, metrics, HTTP and the Discord bridge, started in that
 * order and shut down in reverse. Orphans of an earlier instance are reaped before any new session can start.
 */
export class App {
  readonly config: Config;
  readonly logger: Logger;
  readonly store: Store;
  readonly table: ProcessTable;
  readonly pool: SessionPool;
  readonly recorder: SessionRecorder;
  readonly bridge: DiscordBridge;
  readonly monitor: ResourceMonitor;
  readonly metrics: Metrics;
  readonly http: HttpServer;
  /** Where /health and /metrics listen (the real port when HTTP_PORT=0). */
  httpAddress: { host: string; port: number } | undefined;
  /** What the start-up reaper ended before this instance took work. */
  reaped: ReapResult = { sessions: [], rowsClosed: 0, durationMs: 0 };
  private readonly lock: InstanceLock;
  private stopping: Promise<void> | undefined;
  private step: ShutdownStep | undefined;
  /** Every session started and not yet closed (its tree may still be dying). */
  private readonly unclosed = new Set<AgentSession>();
  private sessionsEnded: Promise<unknown> | undefined;

  private constructor(
    options: AppOptions,
    lock: InstanceLock,
    store: Store,
    table: ProcessTable,
    sandbox: ResolvedSandbox,
  ) {
    this.lock = lock;
    this.config = options.config;
    this.logger = options.logger;
    this.store = store;
    this.table = table;
    this.pool = new SessionPool({
      config: options.config,
      logger: options.logger,
      table,
      resumeOf: (threadId, cwd) => resumeOf(store, threadId, cwd),
      ...(options.env !== undefined && { env: options.env }),
      ...(options.instanceId !== undefined && { instanceId: options.instanceId }),
      spawnWrapper: sandbox.sandbox,
      sandboxStatus: sandbox.status,
    });
    this.recorder = new SessionRecorder({ pool: this.pool, store });
    this.pool.on('sessionCreated', (s) => this.unclosed.add(s));
    this.pool.on('sessionEnd', (s) => this.unclosed.delete(s));
    this.monitor = new ResourceMonitor({
      pool: this.pool,
      config: options.config,
      logger: options.logger,
      store,
    });
    const usage = (threadId: string) => this.monitor.usage(threadId);
    this.metrics = new Metrics(this.pool, usage);
    this.bridge = new DiscordBridge({
      config: options.config,
      pool: this.pool,
      logger: options.logger,
      usage,
      usageTotals: (threadIds) => store.usageOfThreads(threadIds),
      onRateLimited: (route) => this.metrics.recordRateLimit(route),
      ...(options.clientOptions !== undefined && { clientOptions: options.clientOptions }),
      ...(options.editIntervalMs !== undefined && { editIntervalMs: options.editIntervalMs }),
      ...(options.discordClock !== undefined && { clock: options.discordClock }),
      ...(options.onMessageStep !== undefined && { onStep: options.onMessageStep }),
    });
    this.http = new HttpServer({
      config: options.config,
      pool: this.pool,
      store,
      metrics: this.metrics,
      logger: options.logger,
      usage,
      gatewayConnected: () => this.bridge.connected,
    });
  }

  static async start(options: AppOptions): Promise<App> {
    const { config, logger } = options;
    // First: with AGENT_SANDBOX=on a host without a working sandbox stops here (exit 2, nothing touched yet).
    const sandbox = await resolveSandbox({
      mode: config.agentSandbox,
      workspaceRoot: config.workspaceRoot,
      databasePath: config.databasePath,
      logger,
    });
    const lock = InstanceLock.acquire(config.databasePath, logger);
    let store: Store;
    try {
      store = new Store(config.databasePath, {
        logger,
        retentionMs: config.historyRetentionDays * 86_400_000,
      });
    } catch (err) {
      lock.release();
      throw err;
    }
    const table = new ProcessTable();
    // Before any new work: trees and rows left by a dead instance are ended as bot_restart.
    const reaped = await reapOrphans({
      table,
      logger,
      graceMs: config.killGraceMs,
      store,
      ...(options.reapScope !== undefined && { owns: options.reapScope }),
    });
    if (reaped.sessions.length > 0 || reaped.rowsClosed > 0) {
      logger.warn(
        {
          sessions: reaped.sessions.length,
          rowsClosed: reaped.rowsClosed,
          ms: Math.round(reaped.durationMs),
        },
        'reaped what an earlier instance left behind',
      );
    }
    const app = new App(options, lock, store, table, sandbox);
    options.onCreated?.(app);
    app.reaped = reaped;
    app.metrics.recordReaped(reaped.sessions.reduce((n, s) => n + s.pids.length, 0));
    try {
      app.httpAddress = await app.http.listen();
      app.monitor.start();
      await app.bridge.start();
    } catch (err) {
      await app.shutdown();
      throw err;
    }
    return app;
  }

  /** Stops taking work, ends every session (`shutdown`), closes Discord and the database. Idempotent. */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      const t0 = performance.now();
      this.step = 'sessions';
      this.monitor.close();
      const closing = this.pool.closeAll('shutdown');
      this.sessionsEnded = closing.catch(() => undefined);
      const results = await closing;
      this.step = 'http';
      await this.http.close();
      this.step = 'discord';
      await this.bridge.destroy();
      this.step = 'database';
      this.recorder.close();
      this.store.close();
      this.lock.release();
      this.step = 'done';
      this.logger.info(
        { sessions: results.length, ms: Math.round(performance.now() - t0) },
        'shut down: every session ended',
      );
    })();
    return this.stopping;
  }

  /** The running shutdown step and the sessions whose trees are not gone yet. */
  shutdownProgress(): ShutdownProgress {
    return {
      step: this.step ?? 'start-up',
      sessions: [...this.unclosed].map((s) => ({ threadId: s.threadId, pid: s.pid, state: s.state })),
    };
  }

  /**
   * Resolves once every session the shutdown is ending has closed (its row written), or after `capMs`: a forced
   * exit gives the sessions whose trees it SIGKILLed this long to record their end.
   */
  async sessionsClosed(capMs: number): Promise<void> {
    if (!this.sessionsEnded) return;
    let timer: NodeJS.Timeout | undefined;
    const cap = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, capMs);
    });
    await Promise.race([this.sessionsEnded, cap]);
    clearTimeout(timer);
  }
}
