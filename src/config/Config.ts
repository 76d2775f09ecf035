import { existsSync, readFileSync } from 'node:fs';
import { parse as parseDotenv } from 'dotenv';
import { z } from 'zod';
import { ConfigError } from '../errors.js';
import { splitArgs } from './splitArgs.js';

const SNOWFLAKE = /^\d{17,20}$/;

/** A comma-separated list whose every item must match `item`; blanks are ignored. */
const commaList = (item: RegExp, expected: string) =>
  z
    .string()
    .transform((raw) =>
      raw
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0),
    )
    .pipe(z.array(z.string().regex(item, expected)));

const snowflakeList = commaList(SNOWFLAKE, 'a comma-separated list of Discord ids (17-20 digits)');

const boolean = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'true or false' })
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

const int = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, `a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(
      z
        .number()
        .int()
        .min(min, `a whole number from ${min} to ${max}`)
        .max(max, `a whole number from ${min} to ${max}`),
    );

const url = z
  .string()
  .url('an http(s) URL')
  .refine((u) => /^https?:\/\//.test(u), 'an http(s) URL');

const envName = commaList(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a comma-separated list of environment variable names');

/** Every variable, its default (as the string an operator would write) and its parser. */
const schema = z.object({
  DISCORD_TOKEN: z.string().min(1, 'a Discord bot token'),
  DISCORD_API_BASE: url.default('https://discord.com/api'),
  DISCORD_GUILD_ID: z.string().regex(SNOWFLAKE, 'a Discord guild id (17-20 digits)').optional(),
  ALLOWED_USER_IDS: snowflakeList.default([]),
  ALLOWED_ROLE_IDS: snowflakeList.default([]),
  ALLOWED_CHANNEL_IDS: snowflakeList.default([]),
  ALLOW_ALL_USERS: boolean.default(false),
  KIRO_CLI_PATH: z.string().min(1, 'a path or command name').default('kiro-cli'),
  AGENT_PROTOCOL: z
    .enum(['acp', 'classic'], {
      message: 'acp (Agent Client Protocol, the default) or classic (the line UI in a pty)',
    })
    .default('acp'),
  // No default here: it depends on AGENT_PROTOCOL (see DEFAULT_KIRO_ARGS).
  KIRO_ARGS: z.string().optional(),
  ACP_LOAD_TIMEOUT_MS: int(100, 600_000).default(15_000),
  TRUST_ALL_TOOLS: boolean.default(false),
  AGENT_ENV_PASSTHROUGH: envName.default([]),
  AGENT_SANDBOX: z.enum(['auto', 'on', 'off'], { message: 'auto, on or off' }).default('auto'),
  // 19: the bot's loop stays responsive whatever the agents do (README, "CPU priority"); agents still get every idle cycle.
  AGENT_NICE: int(0, 19).default(19),
  WORKSPACE_ROOT: z.string().min(1, 'a directory path').default('./data/workspaces'),
  DATABASE_PATH: z.string().min(1, 'a file path').default('./data/threadwarden.db'),
  HISTORY_RETENTION_DAYS: int(1, 36_500).default(90),
  MAX_SESSIONS: int(1, 10_000).default(10),
  SESSION_IDLE_TTL_MS: int(1_000, 2_147_483_647).default(1_800_000),
  KILL_GRACE_MS: int(0, 60_000).default(1500),
  MAX_CPU_PERCENT: int(1, 10_000).default(90),
  MAX_STUCK_MS: int(0, 2_147_483_647).default(120_000),
  MAX_MEMORY_MB: int(16, 1_048_576).default(1500),
  MAX_TURN_SILENCE_MS: int(1_000, 2_147_483_647).default(600_000),
  RESOURCE_CHECK_INTERVAL_MS: int(100, 3_600_000).default(10_000),
  SPAWN_TIMEOUT_MS: int(500, 600_000).default(60_000),
  TURN_QUIET_MS: int(100, 600_000).default(5_000),
  USAGE_FOOTER: boolean.default(true),
  ATTACHMENT_MAX_BYTES: int(1, 1_073_741_824).default(8_388_608),
  ATTACHMENT_MAX_MESSAGE_BYTES: int(1, 1_073_741_824).default(26_214_400),
  HTTP_HOST: z.string().min(1, 'a host name or address').default('127.0.0.1'),
  HTTP_PORT: int(0, 65_535).default(8082),
  LOG_LEVEL: z
    .enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], {
      message: 'one of fatal, error, warn, info, debug, trace, silent',
    })
    .default('info'),
});

type Parsed = z.infer<typeof schema>;

/**
 * KIRO_ARGS when unset, per protocol (CONTRACT.md). ACP pins the V2 engine: kiro-cli 3.x defaults chat to V3, its
 * ACP default is unconfirmed (kiro-acp.md §9), and V3 refuses --trust-all-tools and needs answers the bot does not
 * give (`_kiro/auth/getAccessToken`). README: "Which engine".
 */
export const DEFAULT_KIRO_ARGS = { acp: 'acp --agent-engine v2', classic: 'chat --legacy-ui' } as const;

/** The validated, frozen configuration of one bot instance. Durations in milliseconds, memory in MB. */
export interface Config {
  readonly discordToken: string;
  readonly discordApiBase: string;
  readonly discordGuildId: string | undefined;
  readonly allowedUserIds: readonly string[];
  readonly allowedRoleIds: readonly string[];
  readonly allowedChannelIds: readonly string[];
  readonly allowAllUsers: boolean;
  readonly kiroCliPath: string;
  readonly agentProtocol: 'acp' | 'classic';
  readonly kiroArgs: readonly string[];
  /** How long session/load may take before a thread's new session starts afresh, ms. */
  readonly acpLoadTimeoutMs: number;
  readonly trustAllTools: boolean;
  readonly agentEnvPassthrough: readonly string[];
  /** auto: sandbox each agent when bwrap works here, else run unsandboxed with a warning; on: refuse to start without one. */
  readonly agentSandbox: 'auto' | 'on' | 'off';
  /** Each agent's session runs at this nice value (autogroup and process), below the bot's; 0 leaves it. */
  readonly agentNice: number;
  readonly workspaceRoot: string;
  readonly databasePath: string;
  /** Ended sessions and events older than this many days are deleted from the history. */
  readonly historyRetentionDays: number;
  readonly maxSessions: number;
  readonly sessionIdleTtlMs: number;
  readonly killGraceMs: number;
  readonly maxCpuPercent: number;
  readonly maxStuckMs: number;
  readonly maxMemoryMb: number;
  readonly maxTurnSilenceMs: number;
  readonly resourceCheckIntervalMs: number;
  readonly spawnTimeoutMs: number;
  readonly turnQuietMs: number;
  /** A one-line usage footer (credits, context, duration) under each final reply. */
  readonly usageFooter: boolean;
  /** Largest attachment file passed to the agent, bytes. */
  readonly attachmentMaxBytes: number;
  /** Largest total of one message's attachments, bytes. */
  readonly attachmentMaxMessageBytes: number;
  readonly httpHost: string;
  readonly httpPort: number;
  readonly logLevel: Parsed['LOG_LEVEL'];
}

export const CONFIG_VARIABLES = Object.keys(schema.shape) as (keyof Parsed)[];

/**
 * Parses the environment into a Config. Empty strings count as unset, so `FOO=` in a .env file means "default".
 * Throws ConfigError naming every bad variable, its value and what was expected.
 */
export function parseConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const input: Record<string, string> = {};
  for (const name of CONFIG_VARIABLES) {
    const value = env[name];
    if (value !== undefined && value.trim() !== '') input[name] = value.trim();
  }
  const result = schema.safeParse(input);
  if (!result.success) {
    // One line per variable: the first thing wrong with it.
    const byVariable = new Map<string, { variable: string; value: string | undefined; expected: string }>();
    for (const issue of result.error.issues) {
      const variable = String(issue.path[0] ?? '(unknown)');
      if (!byVariable.has(variable))
        byVariable.set(variable, { variable, value: input[variable], expected: issue.message });
    }
    const issues = [...byVariable.values()];
    throw new ConfigError(issues);
  }
  const c = result.data;
  let kiroArgs: string[];
  try {
    kiroArgs = splitArgs(c.KIRO_ARGS ?? DEFAULT_KIRO_ARGS[c.AGENT_PROTOCOL]);
  } catch (err) {
    throw new ConfigError([{ variable: 'KIRO_ARGS', value: c.KIRO_ARGS, expected: (err as Error).message }]);
  }
  if (c.AGENT_PROTOCOL === 'acp' && c.TRUST_ALL_TOOLS && engineOf(kiroArgs) === 'v3') {
    // The bot appends --trust-all-tools, which V3 refuses at start-up: every thread's agent would fail.
    throw new ConfigError([
      {
        variable: 'TRUST_ALL_TOOLS',
        value: input.TRUST_ALL_TOOLS,
        expected: 'false with KIRO_ARGS naming --agent-engine v3 (V3 refuses --trust-all-tools)',
      },
    ]);
  }
  if (c.ATTACHMENT_MAX_MESSAGE_BYTES < c.ATTACHMENT_MAX_BYTES) {
    throw new ConfigError([
      {
        variable: 'ATTACHMENT_MAX_MESSAGE_BYTES',
        value: input.ATTACHMENT_MAX_MESSAGE_BYTES ?? String(c.ATTACHMENT_MAX_MESSAGE_BYTES),
        expected: `a whole number at least ATTACHMENT_MAX_BYTES (${c.ATTACHMENT_MAX_BYTES})`,
      },
    ]);
  }
  if (
    !c.ALLOW_ALL_USERS &&
    c.ALLOWED_USER_IDS.length === 0 &&
    c.ALLOWED_ROLE_IDS.length === 0 &&
    c.ALLOWED_CHANNEL_IDS.length === 0
  ) {
    throw new ConfigError([
      {
        variable: 'ALLOW_ALL_USERS',
        value: input.ALLOW_ALL_USERS,
        expected:
          '"true" when ALLOWED_USER_IDS, ALLOWED_ROLE_IDS and ALLOWED_CHANNEL_IDS are all empty (refusing to give everyone shell access)',
      },
    ]);
  }
  return Object.freeze({
    discordToken: c.DISCORD_TOKEN,
    discordApiBase: c.DISCORD_API_BASE.replace(/\/+$/, ''),
    discordGuildId: c.DISCORD_GUILD_ID,
    allowedUserIds: Object.freeze(c.ALLOWED_USER_IDS),
    allowedRoleIds: Object.freeze(c.ALLOWED_ROLE_IDS),
    allowedChannelIds: Object.freeze(c.ALLOWED_CHANNEL_IDS),
    allowAllUsers: c.ALLOW_ALL_USERS,
    kiroCliPath: c.KIRO_CLI_PATH,
    agentProtocol: c.AGENT_PROTOCOL,
    kiroArgs: Object.freeze(kiroArgs),
    acpLoadTimeoutMs: c.ACP_LOAD_TIMEOUT_MS,
    trustAllTools: c.TRUST_ALL_TOOLS,
    agentEnvPassthrough: Object.freeze(c.AGENT_ENV_PASSTHROUGH),
    agentSandbox: c.AGENT_SANDBOX,
    agentNice: c.AGENT_NICE,
    workspaceRoot: c.WORKSPACE_ROOT,
    databasePath: c.DATABASE_PATH,
    historyRetentionDays: c.HISTORY_RETENTION_DAYS,
    maxSessions: c.MAX_SESSIONS,
    sessionIdleTtlMs: c.SESSION_IDLE_TTL_MS,
    killGraceMs: c.KILL_GRACE_MS,
    maxCpuPercent: c.MAX_CPU_PERCENT,
    maxStuckMs: c.MAX_STUCK_MS,
    maxMemoryMb: c.MAX_MEMORY_MB,
    maxTurnSilenceMs: c.MAX_TURN_SILENCE_MS,
    resourceCheckIntervalMs: c.RESOURCE_CHECK_INTERVAL_MS,
    spawnTimeoutMs: c.SPAWN_TIMEOUT_MS,
    turnQuietMs: c.TURN_QUIET_MS,
    usageFooter: c.USAGE_FOOTER,
    attachmentMaxBytes: c.ATTACHMENT_MAX_BYTES,
    attachmentMaxMessageBytes: c.ATTACHMENT_MAX_MESSAGE_BYTES,
    httpHost: c.HTTP_HOST,
    httpPort: c.HTTP_PORT,
    logLevel: c.LOG_LEVEL,
  });
}

/** Reads `.env` (when present) under the real environment, which wins, then parses. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, dotenvPath = '.env'): Config {
  const fromFile = existsSync(dotenvPath) ? parseDotenv(readFileSync(dotenvPath)) : {};
  return parseConfig({ ...fromFile, ...env });
}

/** The `--agent-engine` KIRO_ARGS names (`--agent-engine v3` or `--agent-engine=v3`), if any. */
function engineOf(args: readonly string[]): string | undefined {
  let engine: string | undefined;
  args.forEach((a, i) => {
    if (a === '--agent-engine') engine = args[i + 1];
    else if (a.startsWith('--agent-engine=')) engine = a.slice('--agent-engine='.length);
  });
  return engine;
}
