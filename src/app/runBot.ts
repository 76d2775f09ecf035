import type { Config } from '../config/Config.js';
import { createLogger, type Logger } from '../log/logger.js';
import { App } from './App.js';

/** Exit code of a shutdown that had to be forced (second signal, deadline passed): docs/operations.md. */
export const FORCED_EXIT_CODE = 1;

/** How long a forced exit lets the sessions whose trees it SIGKILLed write their `shutdown` rows. */
const RECORD_CAP_MS = 2000;

/** What keeps the event loop alive, counted by kind (sockets, timers, child processes…). */
function activeHandles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const kind of process.getActiveResourcesInfo()) counts[kind] = (counts[kind] ?? 0) + 1;
  return counts;
}

/**
 * `threadwarden start`: runs until SIGTERM or SIGINT, then shuts down within KILL_GRACE_MS + 5 s of the signal
 * (exit 0). A second signal, or a shutdown past the deadline, SIGKILLs every agent tree at once, logs what was
 * unfinished and exits 1 whatever handle (a gateway socket that never closes, a request in flight) is still open.
 * A signal during start-up is honoured as soon as start-up has finished, within the same deadline: a start-up
 * that cannot finish (Discord not answering) is a forced exit too.
 */
export async function runBot(config: Config): Promise<number> {
  const logger = createLogger(config.logLevel);
  const deadlineMs = config.killGraceMs + 5000;
  let app: App | undefined;
  let signals = 0;
  let deadlineAt = 0;
  let deadline: NodeJS.Timeout | undefined;
  let stop!: (signal: NodeJS.Signals) => void;
  const stopped = new Promise<NodeJS.Signals>((resolve) => {
    stop = resolve;
  });
  let forcing: Promise<never> | undefined;
  const forceExit = (why: string): Promise<never> => {
    forcing ??= forcedExit(logger, app, why);
    return forcing;
  };
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      logger.info({ signal }, 'shutting down');
      deadlineAt = performance.now() + deadlineMs;
      // Ref'd while the shutdown runs: an await with no handle behind it must not let the process end silently.
      deadline = setTimeout(
        () => void forceExit('shutdown deadline passed: killing every agent tree now'),
        deadlineMs,
      );
      stop(signal);
      return;
    }
    void forceExit(`second signal (${signal}): killing every agent tree now`);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    app = await App.start({
      config,
      logger,
      onCreated: (created) => {
        app = created;
      },
    });
  } catch (err) {
    clearTimeout(deadline);
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    throw err;
  }
  const running = app;
  await stopped;
  await running.shutdown();
  clearTimeout(deadline);
  // Shut down: the process ends when the event loop drains. A handle still holding it at the deadline (this
  // unref'd timer does not) makes it a forced exit, so the deadline holds either way.
  setTimeout(
    () => void forceExit('shutdown deadline passed with handles still open after the shutdown'),
    Math.max(0, deadlineAt - performance.now()),
  ).unref();
  logger.flush();
  return forcing ? forcing : 0;
}

/**
 * The end of a shutdown that cannot finish: log what is unfinished, SIGKILL every agent tree (never leave an
 * agent behind), give the sessions a moment to record their end, then exit 1 whatever is still open.
 */
async function forcedExit(logger: Logger, app: App | undefined, why: string): Promise<never> {
  const unfinished = app?.shutdownProgress() ?? { step: 'start-up', sessions: [] };
  logger.error({ unfinished, handles: activeHandles() }, why);
  try {
    if (app) {
      await app.pool.forceKillAll();
      await app.sessionsClosed(RECORD_CAP_MS);
      // Rows are committed on the next turn of the loop, which an exit would not wait for.
      app.store.close();
    }
  } catch (err) {
    logger.error({ err }, 'forced shutdown: killing the agent trees or recording their end failed');
  }
  logger.error({ code: FORCED_EXIT_CODE }, 'forced shutdown: exiting');
  logger.flush();
  process.exit(FORCED_EXIT_CODE);
}
