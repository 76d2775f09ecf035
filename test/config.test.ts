import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { DEFAULT_KIRO_ARGS, parseConfig } from '../src/config/Config.js';
import { splitArgs } from '../src/config/splitArgs.js';
import { ConfigError } from '../src/errors.js';

const base = { DISCORD_TOKEN: 'tok', ALLOW_ALL_USERS: 'true' };

function issuesOf(env: Record<string, string>) {
  try {
    parseConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).issues;
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('applies the documented defaults', () => {
    const c = parseConfig(base);
    expect(c).toMatchObject({
      discordApiBase: 'https://discord.com/api',
      kiroCliPath: 'kiro-cli',
      agentProtocol: 'acp',
      kiroArgs: ['acp', '--agent-engine', 'v2'],
      acpLoadTimeoutMs: 15_000,
      trustAllTools: false,
      workspaceRoot: './data/workspaces',
      databasePath: './data/threadwarden.db',
      historyRetentionDays: 90,
      maxSessions: 10,
      sessionIdleTtlMs: 1_800_000,
      killGraceMs: 1500,
      maxCpuPercent: 90,
      maxStuckMs: 120_000,
      maxMemoryMb: 1500,
      resourceCheckIntervalMs: 10_000,
      httpHost: '127.0.0.1',
      httpPort: 8082,
      logLevel: 'info',
      usageFooter: true,
      attachmentMaxBytes: 8 * 1024 * 1024,
      attachmentMaxMessageBytes: 25 * 1024 * 1024,
    });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('parses lists, booleans and quoted agent arguments', () => {
    const c = parseConfig({
      DISCORD_TOKEN: 't',
      ALLOWED_USER_IDS: ' 123456789012345678, 223456789012345678 ',
      TRUST_ALL_TOOLS: 'true',
      KIRO_ARGS: `chat --legacy-ui --agent "my agent" --model 'a b'`,
    });
    expect(c.allowedUserIds).toEqual(['123456789012345678', '223456789012345678']);
    expect(c.trustAllTools).toBe(true);
    expect(c.kiroArgs).toEqual(['chat', '--legacy-ui', '--agent', 'my agent', '--model', 'a b']);
  });

  it.each([
    ['MAX_SESSIONS', 'ten', 'whole number'],
    ['MAX_SESSIONS', '0', 'whole number from 1'],
    ['KILL_GRACE_MS', '-5', 'whole number'],
    ['HTTP_PORT', '70000', 'whole number from 0 to 65535'],
    ['ALLOWED_USER_IDS', '123,abc', 'Discord ids'],
    ['DISCORD_GUILD_ID', '42', 'guild id'],
    ['TRUST_ALL_TOOLS', 'maybe', 'true or false'],
    ['LOG_LEVEL', 'loud', 'one of fatal'],
    ['DISCORD_API_BASE', 'not a url', 'URL'],
    ['KIRO_ARGS', 'chat "unclosed', 'balanced quotes'],
    ['AGENT_ENV_PASSTHROUGH', 'GOOD,bad-name', 'variable names'],
    ['USAGE_FOOTER', 'sometimes', 'true or false'],
    ['ATTACHMENT_MAX_BYTES', '8MB', 'whole number from 1'],
    ['ATTACHMENT_MAX_MESSAGE_BYTES', '0', 'whole number from 1'],
    ['ATTACHMENT_MAX_MESSAGE_BYTES', '1000', 'at least ATTACHMENT_MAX_BYTES'],
    ['AGENT_SANDBOX', 'maybe', 'auto, on or off'],
    ['HISTORY_RETENTION_DAYS', '0', 'whole number from 1 to 36500'],
    ['HISTORY_RETENTION_DAYS', '90d', 'whole number from 1 to 36500'],
  ])('rejects %s=%s naming the variable, value and expectation', (variable, value, expected) => {
    const issues = issuesOf({ ...base, [variable]: value });
    expect(issues).toEqual([expect.objectContaining({ variable, value })]);
    expect(issues[0]?.expected).toContain(expected);
  });

  it('requires a token', () => {
    expect(issuesOf({ ALLOW_ALL_USERS: 'true' })[0]).toMatchObject({
      variable: 'DISCORD_TOKEN',
      value: undefined,
    });
  });

  it('refuses to start with every allowlist empty unless ALLOW_ALL_USERS=true', () => {
    expect(issuesOf({ DISCORD_TOKEN: 't' })[0]?.variable).toBe('ALLOW_ALL_USERS');
    expect(() => parseConfig({ DISCORD_TOKEN: 't', ALLOWED_ROLE_IDS: '123456789012345678' })).not.toThrow();
  });

  it('splits arguments like a shell without running one', () => {
    expect(splitArgs(`a 'b c' "d \\"e\\"" f\\ g $(rm) ;`)).toEqual([
      'a',
      'b c',
      'd "e"',
      'f g',
      '$(rm)',
      ';',
    ]);
    expect(splitArgs('   ')).toEqual([]);
    expect(splitArgs(`''`)).toEqual(['']);
  });
});

describe('bad configuration at start-up', () => {
  it('exits with code 2 and a message naming the variable, the value and what was expected', () => {
    const r = spawnSync(process.execPath, ['dist/src/cli.js', 'start'], {
      env: { PATH: process.env.PATH, DISCORD_TOKEN: 'x', ALLOW_ALL_USERS: 'true', MAX_SESSIONS: 'lots' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('MAX_SESSIONS="lots"');
    expect(r.stderr).toContain('expected a whole number');
  });

  it('exits with code 2 naming a bad usage footer switch', () => {
    const r = spawnSync(process.execPath, ['dist/src/cli.js', 'start'], {
      env: { PATH: process.env.PATH, DISCORD_TOKEN: 'x', ALLOW_ALL_USERS: 'true', USAGE_FOOTER: 'sometimes' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('USAGE_FOOTER="sometimes"');
    expect(r.stderr).toContain('expected true or false');
  });

  it('exits with code 2 naming a bad history retention', () => {
    const r = spawnSync(process.execPath, ['dist/src/cli.js', 'start'], {
      env: {
        PATH: process.env.PATH,
        DISCORD_TOKEN: 'x',
        ALLOW_ALL_USERS: 'true',
        HISTORY_RETENTION_DAYS: '-1',
      },
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('HISTORY_RETENTION_DAYS="-1"');
    expect(r.stderr).toContain('expected a whole number from 1 to 36500');
  });
});

describe('AGENT_PROTOCOL', () => {
  it('defaults KIRO_ARGS per protocol, and an explicit KIRO_ARGS wins', () => {
    expect(parseConfig(base).kiroArgs).toEqual(DEFAULT_KIRO_ARGS.acp.split(' '));
    expect(parseConfig({ ...base, AGENT_PROTOCOL: 'classic' }).kiroArgs).toEqual(['chat', '--legacy-ui']);
    expect(
      parseConfig({ ...base, AGENT_PROTOCOL: 'acp', KIRO_ARGS: 'acp --agent-engine v2' }).kiroArgs,
    ).toEqual(['acp', '--agent-engine', 'v2']);
  });

  it('pins the V2 engine by default for ACP', () => {
    expect(parseConfig(base).kiroArgs).toEqual(['acp', '--agent-engine', 'v2']);
  });

  it('refuses TRUST_ALL_TOOLS with the V3 engine, which refuses --trust-all-tools, naming both', () => {
    for (const KIRO_ARGS of ['acp --agent-engine v3', 'acp --agent-engine=v3']) {
      expect(() => parseConfig({ ...base, KIRO_ARGS, TRUST_ALL_TOOLS: 'true' })).toThrow(
        /TRUST_ALL_TOOLS="true": expected false with KIRO_ARGS naming --agent-engine v3/,
      );
    }
    expect(parseConfig({ ...base, KIRO_ARGS: 'acp --agent-engine v3' }).trustAllTools).toBe(false);
    expect(
      parseConfig({ ...base, KIRO_ARGS: 'acp --agent-engine v2', TRUST_ALL_TOOLS: 'true' }).trustAllTools,
    ).toBe(true);
  });

  it('refuses an unknown protocol naming the variable, the value and the choices', () => {
    expect(() => parseConfig({ ...base, AGENT_PROTOCOL: 'pty' })).toThrow(
      /AGENT_PROTOCOL="pty": expected acp .*or classic/,
    );
  });
});
