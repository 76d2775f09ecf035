import type { Config } from '../config/Config.js';
import { createLogger } from '../log/logger.js';
import { App } from './App.js';

/**
 * `threadwarden start`: runs until SIGTERM or SIGINT, then shuts down within KILL_GRACE_MS + 5 s. A second signal
 * SIGKILLs every agent tree at once and exits 1.
 */
export async function runBot(config: Config): Promise<number> {
  const logger = createLogger(config.logLevel);
  const app = await App.start({ config, logger });
  return new Promise<number>((resolve) => {
    let signals = 0;
    const onSignal = (signal: NodeJS.Signals) => {
      signals++;
      if (signals > 1) {
        logger.warn({ signal }, 'second signal: killing every agent tree now');
        void app.pool.forceKillAll().finally(() => resolve(1));
        return;
      }
      logger.info({ signal }, 'shutting down');
      const deadline = setTimeout(() => {
        logger.error('shutdown deadline passed: killing every agent tree now');
        void app.pool.forceKillAll().finally(() => resolve(1));
      }, config.killGraceMs + 5000);
      deadline.unref();
      void app.shutdown().then(() => {
        clearTimeout(deadline);
        resolve(0);
      });
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }).then((code) => {
    logger.flush();
    return code;
  });
}
