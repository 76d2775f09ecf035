#!/usr/bin/env node
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type Config, loadConfig } from './config/Config.js';
import { END_REASONS, type EndReason, isEndReason } from './endReasons.js';
import { ConfigError } from './errors.js';
import { createLogger } from './log/logger.js';
import { reapOrphans } from './pool/Reaper.js';
import { ProcessTable } from './process/ProcessTable.js';
import { Store } from './store/Store.js';

const USAGE = `threadwarden: a Discord bridge that gives every thread its own kiro-cli agent

Usage: threadwarden <command> [options]

Commands:
  start                 run the bot in the foreground (same as npm start)
  status                print the running bot's health and sessions; exit 0 healthy, 1 unhealthy, 2 not running
  history               list recorded sessions and why they ended
  reap [--dry-run]      kill agent processes left behind by a bot that died, close its open rows
  demo                  run the bot against the bundled Discord emulator and fake agent

Run 'threadwarden <command> --help' for a command's options. Configuration comes from the environment and
an optional .env file (see .env.example).`;

const HELP: Record<string, string> = {
  start: 'Usage: threadwarden start\n\nRuns the bot in the foreground until SIGTERM or SIGINT.',
  status:
    'Usage: threadwarden status [--json]\n\nReads GET /health of the running bot (HTTP_HOST:HTTP_PORT).\nExit 0 healthy, 1 unhealthy, 2 not running.',
  history: `Usage: threadwarden history [--thread ID] [--reason R] [--since 24h] [--limit N] [--json]

Lists sessions from DATABASE_PATH, newest first, with the credits each session's agent reported and the
thread's total over all its sessions.
  --thread ID    only this thread
  --reason R     only sessions that ended for R (${END_REASONS.join(', ')})
  --since D      only sessions started within D (e.g. 90s, 30m, 24h, 7d)
  --limit N      at most N rows (default 50)
  --json         one JSON array instead of a table`,
  reap: 'Usage: threadwarden reap [--dry-run]\n\nKills every agent process whose owning bot is dead and closes its open rows as bot_restart.\n  --dry-run   list what would be killed, kill nothing',
  demo: 'Usage: threadwarden demo\n\nRuns the real bot against the local Discord emulator and the fake agent in a temporary directory,\nprints a transcript and the session history, and exits 0.',
};

/** Exit codes: 0 ok, 1 failure, 2 bad usage or configuration. */
class UsageError extends Error {}

function fail(message: string, code: number): never {
  process.stderr.write(`threadwarden: ${message}\n`);
  process.exit(code);
}

/** Loads configuration or exits 2 naming each bad variable. */
export function configOrExit(env: NodeJS.ProcessEnv = process.env): Config {
  try {
    return loadConfig(env);
  } catch (err) {
    if (err instanceof ConfigError) {
      fail(`invalid configuration:\n${err.message}\nSee .env.example for every variable and its default.`, 2);
    }
    throw err;
  }
}

/** Like configOrExit, for commands that only read the database: no token or allowlist needed. */
function readOnlyConfig(): Config {
  return configOrExit({ DISCORD_TOKEN: 'unused', ALLOW_ALL_USERS: 'true', ...process.env });
}

export function parseDuration(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (!m)
    throw new UsageError(
      `--since: expected a duration like 90s, 30m, 24h or 7d, got ${JSON.stringify(text)}`,
    );
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    m[2] as 'ms' | 's' | 'm' | 'h' | 'd'
  ];
  return Number(m[1]) * unit;
}

async function history(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      thread: { type: 'string' },
      reason: { type: 'string' },
      since: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean', default: false },
    },
  });
  if (values.reason !== undefined && !isEndReason(values.reason)) {
    throw new UsageError(
      `--reason: expected one of ${END_REASONS.join(', ')}, got ${JSON.stringify(values.reason)}`,
    );
  }
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1)
    throw new UsageError(`--limit: expected a positive whole number`);
  const config = readOnlyConfig();
  if (!existsSync(config.databasePath)) {
    process.stderr.write(
      `threadwarden: no database at ${config.databasePath} (DATABASE_PATH); nothing recorded yet\n`,
    );
    if (values.json) process.stdout.write('[]\n');
    return 0;
  }
  const store = new Store(config.databasePath, { logger: createLogger('silent'), readonly: true });
  try {
    const rows = store.history({
      ...(values.thread !== undefined && { threadId: values.thread }),
      ...(values.reason !== undefined && { reason: values.reason as EndReason }),
      ...(values.since !== undefined && { since: Date.now() - parseDuration(values.since) }),
      limit,
    });
    const usage = store.usageOfThreads(rows.map((r) => r.threadId));
    const credits = (r: (typeof rows)[number]) => usage.bySession.get(r.id)?.credits ?? 0;
    const threadCredits = (r: (typeof rows)[number]) => usage.byThread.get(r.threadId)?.credits ?? 0;
    if (values.json) {
      const withUsage = rows.map((r) => ({
        ...r,
        credits: credits(r),
        threadCredits: threadCredits(r),
        contextPercent: usage.bySession.get(r.id)?.lastContextPercent ?? null,
      }));
      process.stdout.write(`${JSON.stringify(withUsage, null, 2)}\n`);
      return 0;
    }
    const table = rows.map((r) => ({
      started: new Date(r.startedAt).toISOString().replace('T', ' ').slice(0, 19),
      thread: r.threadId,
      pid: r.pid ?? '-',
      turns: r.turns,
      lasted: r.endedAt ? `${Math.round((r.endedAt - r.startedAt) / 1000)}s` : 'live',
      reason: r.endReason ?? '(open)',
      kill: r.killSignal ? `${r.killSignal}${r.forced ? ' (forced)' : ''}` : '-',
      teardown: r.teardownMs === null ? '-' : `${Math.round(r.teardownMs)}ms`,
      pids: r.pidsKilled ? (JSON.parse(r.pidsKilled) as number[]).length : 0,
      credits: formatCredits(credits(r)),
      'thread credits': formatCredits(threadCredits(r)),
    }));
    process.stdout.write(formatTable(table));
    return 0;
  } finally {
    store.close();
  }
}

/** Credits as a short figure: `-` for none (the classic transport reports no usage). */
function formatCredits(n: number): string {
  return n === 0 ? '-' : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

/** Plain aligned columns; empty input prints a note instead. */
export function formatTable(rows: Record<string, string | number>[]): string {
  if (rows.length === 0) return '(no sessions)\n';
  const keys = Object.keys(rows[0]!);
  const width = keys.map((k) => Math.max(k.length, ...rows.map((r) => String(r[k]).length)));
  const line = (cells: string[]) =>
    `${cells
      .map((c, i) => c.padEnd(width[i]!))
      .join('  ')
      .trimEnd()}\n`;
  return line(keys) + rows.map((r) => line(keys.map((k) => String(r[k])))).join('');
}

async function reap(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { 'dry-run': { type: 'boolean', default: false } } });
  const config = readOnlyConfig();
  const logger = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel);
  const dryRun = values['dry-run'] ?? false;
  const store =
    existsSync(config.databasePath) && !dryRun ? new Store(config.databasePath, { logger }) : undefined;
  try {
    const result = await reapOrphans({
      table: new ProcessTable(),
      logger,
      graceMs: config.killGraceMs,
      store,
      dryRun,
    });
    for (const s of result.sessions) {
      process.stdout.write(
        `${dryRun ? 'would kill' : 'killed'} session ${s.sessionId} (instance ${s.instanceId}): pids ${s.pids.join(' ') || '(none left)'}\n`,
      );
    }
    const total = result.sessions.reduce((n, s) => n + s.pids.length, 0);
    process.stdout.write(
      `${dryRun ? 'found' : 'reaped'} ${total} orphaned process(es) in ${result.sessions.length} session(s); closed ${result.rowsClosed} open row(s)\n`,
    );
    return 0;
  } finally {
    store?.close();
  }
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(`${USAGE}\n`);
    return command ? 0 : 2;
  }
  if (rest.includes('--help') || rest.includes('-h')) {
    const help = HELP[command];
    if (!help) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    process.stdout.write(`${help}\n`);
    return 0;
  }
  switch (command) {
    case 'start': {
      const config = configOrExit();
      const { runBot } = await import('./app/runBot.js');
      return runBot(config);
    }
    case 'status': {
      const { status } = await import('./app/status.js');
      return status(readOnlyConfig(), rest);
    }
    case 'history':
      return history(rest);
    case 'reap':
      return reap(rest);
    case 'demo': {
      const { runDemo } = await import('./demo/runDemo.js');
      return runDemo();
    }
    default:
      throw new UsageError(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      fail((err as Error).message, 2);
    }
    // Another instance owns the database: a clear line, not a stack trace.
    if ((err as { code?: string }).code === 'INSTANCE_LOCKED') fail((err as Error).message, 1);
    fail(`${(err as Error).stack ?? String(err)}`, 1);
  },
);
