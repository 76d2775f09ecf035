import type { ClientOptions } from 'discord.js';
import type { Config } from '../config/Config.js';
import { DiscordBridge } from '../discord/DiscordBridge.js';
import type { Logger } from '../log/logger.js';
import { reapOrphans } from '../pool/Reaper.js';
import { SessionPool } from '../pool/SessionPool.js';
import { ProcessTable } from '../process/ProcessTable.js';
import { Store } from '../store/Store.js';

export interface AppOptions {
  readonly config: Config;
  readonly logger: Logger;
  /** Where the agent's environment allowlist reads from; default process.env. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Extra discord.js client options (tests pass a no-op identify throttler). */
  readonly clientOptions?: Partial<ClientOptions>;
  readonly editIntervalMs?: number;
}

/**
 * One bot instance: database, reaper, pool and Discord bridge, started in order and shut down in reverse with a
 * deadline. Orphans of an earlier instance are reaped before any new session can start.
 */
export class App {
  readonly config: Config;
  readonly logger: Logger;
  readonly store: Store;
  readonly table: ProcessTable;
  readonly pool: SessionPool;
  readonly bridge: DiscordBridge;
  private stopping: Promise<void> | undefined;

  private constructor(options: AppOptions, store: Store, table: ProcessTable) {
    this.config = options.config;
    this.logger = options.logger;
    this.store = store;
    this.table = table;
    this.pool = new SessionPool({
      config: options.config,
      logger: options.logger,
      store,
      table,
      ...(options.env !== undefined && { env: options.env }),
    });
    this.bridge = new DiscordBridge({
      config: options.config,
      pool: this.pool,
      logger: options.logger,
      ...(options.clientOptions !== undefined && { clientOptions: options.clientOptions }),
      ...(options.editIntervalMs !== undefined && { editIntervalMs: options.editIntervalMs }),
    });
  }

  static async start(options: AppOptions): Promise<App> {
    const { config, logger } = options;
    const store = new Store(config.databasePath, { logger });
    const table = new ProcessTable();
    // Before any new work: trees and rows left by a dead instance are ended as bot_restart.
    const reaped = await reapOrphans({ table, logger, graceMs: config.killGraceMs, store });
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
    const app = new App(options, store, table);
    try {
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
      const results = await this.pool.closeAll('shutdown');
      await this.bridge.destroy();
      this.store.close();
      this.logger.info(
        { sessions: results.length, ms: Math.round(performance.now() - t0) },
        'shut down: every session ended',
      );
    })();
    return this.stopping;
  }
}
