import { dirname, resolve } from 'node:path';
import { ConfigError } from '../../errors.js';
import type { Logger } from '../../log/logger.js';
import { packageRoot } from '../../paths.js';
import { BwrapSandbox } from './BwrapSandbox.js';
import { type ProbeResult, probeSandbox } from './probeSandbox.js';

export type SandboxMode = 'auto' | 'on' | 'off';

/** What /health and /pool-status show: the mechanism agents run under ("bwrap" or "off") and why, when off. */
export interface SandboxStatus {
  readonly mode: SandboxMode;
  readonly mechanism: 'bwrap' | 'off';
  /** Set when agents run unsandboxed although AGENT_SANDBOX asked for auto: what failed. */
  readonly warning?: string;
}

export interface ResolvedSandbox {
  readonly sandbox: BwrapSandbox | undefined;
  readonly status: SandboxStatus;
}

export interface ResolveSandboxOptions {
  readonly mode: SandboxMode;
  readonly workspaceRoot: string;
  readonly databasePath: string;
  readonly logger: Logger;
  /** Extra paths the agent must never see (beyond the bot's directory, cwd, .env, database directory). */
  readonly hidden?: readonly string[];
  /** Swapped in tests to force a failed probe; default probeSandbox. */
  readonly probe?: () => Promise<ProbeResult>;
}

/** The bot's own paths: its package, its working directory and .env, the database with its lock and journal. */
export function botPaths(workspaceRoot: string, databasePath: string): string[] {
  return [
    packageRoot(),
    process.cwd(),
    resolve('.env'),
    dirname(resolve(databasePath)),
    resolve(databasePath),
    resolve(workspaceRoot),
  ];
}

/**
 * AGENT_SANDBOX at start-up: `off` says so; `auto` and `on` probe once with a real sandboxed run. A failed probe
 * is never silent: `on` refuses to start (exit 2, naming what failed), `auto` warns in the log and in /health.
 */
export async function resolveSandbox(options: ResolveSandboxOptions): Promise<ResolvedSandbox> {
  const { mode, logger } = options;
  if (mode === 'off') {
    logger.warn('AGENT_SANDBOX=off: agents run unsandboxed and can read what the bot can read');
    return { sandbox: undefined, status: { mode, mechanism: 'off' } };
  }
  const result = await (options.probe ?? probeSandbox)();
  if (result.ok) {
    logger.info({ bwrap: result.bwrap, probeMs: Math.round(result.ms) }, 'agents run in a bwrap sandbox');
    const sandbox = new BwrapSandbox({
      bwrap: result.bwrap,
      workspaceRoot: options.workspaceRoot,
      hidden: [...botPaths(options.workspaceRoot, options.databasePath), ...(options.hidden ?? [])],
    });
    return { sandbox, status: { mode, mechanism: 'bwrap' } };
  }
  if (mode === 'on')
    throw new ConfigError([
      {
        variable: 'AGENT_SANDBOX',
        value: 'on',
        expected: `a host where the bwrap sandbox works, but the probe failed: ${result.reason} (AGENT_SANDBOX=auto runs agents unsandboxed with a warning)`,
      },
    ]);
  const warning = `no sandbox: ${result.reason}; agents run unsandboxed`;
  logger.warn(
    { reason: result.reason },
    'AGENT_SANDBOX=auto: the sandbox probe failed, agents run unsandboxed',
  );
  return { sandbox: undefined, status: { mode, mechanism: 'off', warning } };
}
