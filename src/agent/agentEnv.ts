import { MARKER_VAR } from '../process/procfs.js';

/** Variables an agent always gets from the bot's environment, when set. */
const BASE_ALLOWLIST = [
  'PATH',
  'HOME',
  'USER',
  'LOGNAME',
  'SHELL',
  'LANG',
  'LC_ALL',
  'LC_CTYPE',
  'TZ',
  'TMPDIR',
];

/** Never passed, even when an operator lists them: the bot's own secrets and markers. */
const DENYLIST = new Set(['DISCORD_TOKEN', MARKER_VAR]);

/**
 * The agent's whole environment: an allowlist (the base names, every KIRO_* variable and the operator's
 * AGENT_ENV_PASSTHROUGH names) plus TERM and the session marker. Nothing else of the bot's environment.
 */
export function buildAgentEnv(
  source: Readonly<Record<string, string | undefined>>,
  passthrough: readonly string[],
  marker: string,
): Record<string, string> {
  const env: Record<string, string> = {};
  const allowed = new Set([...BASE_ALLOWLIST, ...passthrough]);
  for (const [name, value] of Object.entries(source)) {
    if (value === undefined || DENYLIST.has(name)) continue;
    if (allowed.has(name) || name.startsWith('KIRO_')) env[name] = value;
  }
  env.TERM = 'xterm-256color';
  env[MARKER_VAR] = marker;
  return env;
}
