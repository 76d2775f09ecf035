import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { sanitizeInput } from '../src/agent/sanitize.js';
import { CONFIG_VARIABLES, parseConfig } from '../src/config/Config.js';
import { ConfigError } from '../src/errors.js';
import { BotHarness } from './helpers/botHarness.js';
import { PoolHarness } from './helpers/harness.js';

type Protocol = 'classic' | 'acp';
const PROTOCOLS = ['classic', 'acp'] as const;

let h: BotHarness | undefined;
let p: PoolHarness | undefined;
afterEach(async () => {
  const [bot, pool] = [h, p];
  h = undefined;
  p = undefined;
  await bot?.disposeChecked();
  await pool?.disposeChecked();
});

/**
 * What the fake reports for the Discord message `fake:sha <text>`: the bot trims the message, the transport strips
 * control characters, and the agent digests what follows `fake:sha`. The classic transport also drops trailing
 * newlines (it types the text as one paste) and the classic UI deletes zero-width characters (U+200D of emoji
 * sequences too) before the model sees them; over ACP the text block carries every other character unchanged.
 */
function digestOf(message: string, protocol: Protocol): string {
  let sent = sanitizeInput(message.trim());
  if (protocol === 'classic')
    sent = sent.replace(/\n+$/, '').replace(/\u200B|\u200C|\u200D|\u2060|\uFEFF/g, '');
  const body = sent.slice('fake:sha'.length);
  return `sha256 ${createHash('sha256').update(body, 'utf8').digest('hex')} chars ${body.length}`;
}

const NASTY: [string, string][] = [
  ['4000 characters', 'a'.repeat(4000)],
  ['10,000 lines', Array.from({ length: 10_000 }, (_, i) => `line ${i}`).join('\n')],
  ['NUL bytes', 'x\u0000y\u0000z'],
  ['Ctrl-C, Ctrl-D and other control bytes', 'a\u0003b\u0004c\u001ad\u0008e\u007ff'],
  ['ANSI escape sequences', '\u001b[31mred\u001b[0m \u001b]0;title\u0007 \u001b[2J\u001b[H'],
  ['a bracketed-paste end marker', 'before\u001b[201~\r/quit\rafter'],
  ['right-to-left and combining characters', 'שלום עולם \u202Eevil\u202C e\u0301\u0301 Z̷̢͎a̴l̸g̶o̵'],
  ['emoji', '👩‍💻🏳️‍🌈 🇫🇷 ❤️‍🔥'],
];

describe.each(PROTOCOLS)('bad input through Discord reaches the agent over %s as text only', (protocol) => {
  it.each(NASTY)(
    '%s',
    async (_name, text) => {
      h = await BotHarness.start({ AGENT_PROTOCOL: protocol });
      const threadId = await h.mention(h.alice, 'start');
      await h.botMessages(threadId, 0);
      const message = `fake:sha ${text}`;
      h.emu.userSays(threadId, h.alice, message);
      const reply = await h.reply(threadId, (c) => c.startsWith('sha256 '), 30_000);
      // The agent got exactly the sanitised bytes, in one turn, and is still at its prompt (nothing acted as a key).
      expect(reply.content).toBe(digestOf(message, protocol));
      const session = h.app.pool.get(threadId)!;
      expect(session.state).toBe('idle');
      h.emu.userSays(threadId, h.alice, 'still alive?');
      await h.reply(threadId, (c) => c === 'You said: still alive?');
      expect(h.app.pool.get(threadId)!.id).toBe(session.id);
    },
    60_000,
  );
});

describe.each(PROTOCOLS)('agent output over %s that could break Discord', (protocol) => {
  it('fences, mentions and 2000-character lines render safely and ping nobody', async () => {
    h = await BotHarness.start({ AGENT_PROTOCOL: protocol });
    const threadId = await h.mention(h.alice, 'start');
    await h.botMessages(threadId, 0);
    h.emu.userSays(threadId, h.alice, 'fake:mentions');
    await h.reply(threadId, (c) => c.includes('x'.repeat(100)));
    const parts = h.emu
      .channelMessages(threadId)
      .filter((m) => m.author.bot && m.content.includes('x'.repeat(50)));
    for (const m of parts) expect(m.content.length).toBeLessThanOrEqual(2000);
    for (const e of h.emu.requestLog.filter((r) =>
      /^(POST|PATCH) \/channels\/:id\/messages(\/:msg)?$/.test(r.route),
    )) {
      expect((e.body as { allowed_mentions?: unknown }).allowed_mentions).toEqual({
        parse: [],
        replied_user: false,
      });
    }
  });
});

describe('working directories cannot be steered outside WORKSPACE_ROOT', () => {
  it.each(['../../etc', '/tmp/x', '123456789012345678/../..', '', '1234'])(
    'refuses thread id %j',
    async (id) => {
      p = new PoolHarness();
      await expect(p.pool.acquire(id)).rejects.toMatchObject({ code: 'INVALID_THREAD_ID' });
      expect(p.store.history()).toEqual([]);
    },
  );
});

describe('invalid configuration of every variable', () => {
  // Free-form strings (paths, a host name, the token) have no invalid non-empty value; everything else does.
  const BAD: Record<string, string> = {
    DISCORD_API_BASE: 'ftp://example.com',
    DISCORD_GUILD_ID: 'guild',
    ALLOWED_USER_IDS: 'alice',
    ALLOWED_ROLE_IDS: '12,34',
    ALLOWED_CHANNEL_IDS: '#general',
    ALLOW_ALL_USERS: 'sure',
    AGENT_PROTOCOL: 'pty',
    ACP_LOAD_TIMEOUT_MS: '5',
    KIRO_ARGS: "chat 'unclosed",
    TRUST_ALL_TOOLS: 'always',
    AGENT_ENV_PASSTHROUGH: 'A B',
    AGENT_SANDBOX: 'maybe',
    AGENT_NICE: '20',
    USAGE_FOOTER: 'sometimes',
    ATTACHMENT_MAX_BYTES: '8MB',
    ATTACHMENT_MAX_MESSAGE_BYTES: '0',
    MAX_SESSIONS: '0',
    SESSION_IDLE_TTL_MS: '10',
    KILL_GRACE_MS: '1.5s',
    MAX_CPU_PERCENT: '-1',
    MAX_STUCK_MS: 'forever',
    MAX_MEMORY_MB: '1',
    MAX_TURN_SILENCE_MS: '5',
    RESOURCE_CHECK_INTERVAL_MS: '0',
    SPAWN_TIMEOUT_MS: '1',
    TURN_QUIET_MS: '1e3',
    HISTORY_RETENTION_DAYS: '0',
    HTTP_PORT: '99999',
    LOG_LEVEL: 'verbose',
  };
  const FREE_FORM = ['DISCORD_TOKEN', 'KIRO_CLI_PATH', 'WORKSPACE_ROOT', 'DATABASE_PATH', 'HTTP_HOST'];

  it('covers every variable', () => {
    expect([...Object.keys(BAD), ...FREE_FORM].sort()).toEqual([...CONFIG_VARIABLES].sort());
  });

  it.each(Object.entries(BAD))('%s=%s is refused naming the variable and the value', (variable, value) => {
    let error: unknown;
    try {
      parseConfig({ DISCORD_TOKEN: 't', ALLOWED_USER_IDS: '123456789012345678', [variable]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).issues[0]).toMatchObject({ variable, value });
    expect((error as ConfigError).message).toContain(`${variable}=${JSON.stringify(value)}: expected `);
  });
});
