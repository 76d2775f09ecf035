import type { Config } from '../config/Config.js';
import { createLogger } from '../log/logger.js';
import { App } from './App.js';

/**
 * `threadwarden start`: runs until SIGTERM or SIGINT, then shuts down within KILL_GRACE_MS + 5 s (exit 0). A
 * second signal, or a shutdown past the deadline, SIGKILLs every agent tree at once and exits 1. A signal during
 * start-up is honoured as soon as start-up has finished.
 */
export async function runBot(config: Config): Promise<number> {
  const logger = createLogger(config.logLevel);
  let app: App | undefined;
  let signals = 0;
  let stop!: (signal: NodeJS.Signals) => void;
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    stop = resolve;
  });
  let forced: ((code: number) => void) | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      logger.info({ signal }, 'shutting down');
      stop(signal);
      return;
    }
    logger.warn({ signal }, 'second signal: killing every agent tree now');
    void (app?.pool.forceKillAll() ?? Promise.resolve()).finally(() => forced?.(1));
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    app = await App.start({ config, logger });
  } catch (err) {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    throw err;
  }
  const running = app;
  await stopped;
  const code = await new Promise<number>((resolve) => {
    forced = resolve;
    const deadline = setTimeout(() => {
      logger.error('shutdown deadline passed: killing every agent tree now');
      void running.pool.forceKillAll().finally(() => resolve(1));
    }, config.killGraceMs + 5000);
    deadline.unref();
    void running.shutdown().then(() => {
      clearTimeout(deadline);
      resolve(0);
    });
  });
  logger.flush();
  return code;
}
