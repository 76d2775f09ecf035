import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiscordEmulator } from '@threadwarden/discord-emulator';
import type { APIEmbed, APIMessage, APIUser } from 'discord-api-types/v10';
import { App } from '../app/App.js';
import { parseConfig } from '../config/Config.js';
import { createLogger } from '../log/logger.js';
import { fakeKiroPath } from '../paths.js';
import { scanProcesses } from '../process/procfs.js';
import { isDemoInstance, newDemoInstanceId } from './demoInstance.js';

const out = (line = '') => process.stdout.write(`${line}\n`);

function indent(text: string, prefix = '    │ '): string {
  return text
    .split('\n')
    .map((l) => prefix + l)
    .join('\n');
}

function embedText(e: APIEmbed): string {
  const fields = (e.fields ?? []).map((f) => `${f.name}:\n${f.value}`).join('\n');
  return [e.title, e.description, fields].filter(Boolean).join('\n');
}

/**
 * `npm run demo`: the real bot (App: SQLite, reaper, pool, Discord bridge) against the bundled Discord emulator
 * and the fake kiro-cli, in a temporary directory. Prints a transcript and the session history; exits 0 with
 * nothing left running.
 */
export async function runDemo(): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'threadwarden-demo-'));
  const emu = new DiscordEmulator();
  await emu.start();
  const alice = emu.createUser('alice');
  const mallory = emu.createUser('mallory');
  const config = parseConfig({
    DISCORD_TOKEN: 'test-token',
    DISCORD_API_BASE: emu.apiBase,
    DISCORD_GUILD_ID: emu.guildId,
    ALLOWED_USER_IDS: alice.id,
    KIRO_CLI_PATH: fakeKiroPath(),
    WORKSPACE_ROOT: join(dir, 'workspaces'),
    DATABASE_PATH: join(dir, 'threadwarden.db'),
    KILL_GRACE_MS: '1500',
    HTTP_PORT: '0',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent',
  });
  const logger = createLogger(config.logLevel, process.stderr as never);
  out('threadwarden demo: the real bot, a local Discord emulator and a fake kiro-cli');
  out(`  data in ${dir}`);
  out();
  let app: App | undefined;
  try {
    app = await App.start({
      config,
      logger,
      instanceId: newDemoInstanceId(),
      // Only what earlier demo runs left: the demo must not end another bot's processes on this host.
      reapScope: isDemoInstance,
      clientOptions: { ws: { buildIdentifyThrottler: async () => ({ waitForIdentify: async () => {} }) } },
    });
    const leftovers = app.reaped.sessions.reduce((n, s) => n + s.pids.length, 0);
    out(
      `✔ start-up reaper (earlier demo runs only): ${app.reaped.sessions.length} leftover session(s), ${leftovers} process(es) ended`,
    );
    out(`✔ bot connected to the emulator as ${emu.botUser.username}; slash commands registered`);
    const channel = emu.defaultChannelId;
    const say = (user: APIUser, where: string, text: string, mention = false) => {
      const place = where === channel ? '#general' : `thread "${emu.thread(where)?.name ?? where}"`;
      out(`\n${user.username} in ${place}: ${mention ? `@${emu.botUser.username} ` : ''}${text}`);
      return emu.userSays(where, user, text, { mentionBot: mention });
    };
    /** The bot marks a message ✅ (or ❌) after the last part of its reply: then every part is there. */
    const finalReply = async (message: APIMessage, threadId: string): Promise<APIMessage[]> => {
      await emu.waitFor(
        () => emu.reactions(message.channel_id, message.id).some((r) => r === '✅' || r === '❌'),
        { what: 'the agent to finish its turn', timeoutMs: 30_000 },
      );
      return emu.channelMessages(threadId).filter((m) => m.author.bot && BigInt(m.id) > BigInt(message.id));
    };

    // 1. A mention starts a thread and a session.
    const t0 = Date.now();
    const first = say(alice, channel, 'hello, who are you?', true);
    const thread = await emu.waitFor(() => emu.threads().find((t) => t.id === first.id), {
      what: 'the thread',
    });
    out(`  → bot started thread "${thread.name}" (${thread.id}) and a kiro-cli session in it`);
    let replies = await finalReply(first, thread.id);
    for (const m of replies) out(`  bot: ${m.content}`);
    out(`  (first reply ${Date.now() - t0} ms after the message, including the agent's start-up)`);

    // 2. A long reply with a code block arrives in valid parts.
    const long = say(alice, thread.id, 'fake:long 4500');
    replies = await finalReply(long, thread.id);
    out(
      `  bot replied in ${replies.length} messages of ${replies.map((m) => m.content.length).join(', ')} characters:`,
    );
    for (const m of replies) out(indent(`${m.content.split('\n').slice(0, 3).join('\n')}\n…`));

    // 3. A stranger is refused; nothing reaches the agent.
    const refused = say(mallory, thread.id, 'let me in');
    await emu.waitFor(() => emu.reactions(thread.id, refused.id).includes('🚫'), { what: 'the refusal' });
    out('  → 🚫 mallory is not on the allowlist: the message never reached the agent');

    // 4. /pool-status.
    // Two monitor ticks, so CPU (a rate) has a baseline.
    await app.monitor.tick();
    await new Promise((r) => setTimeout(r, 200));
    await app.monitor.tick();
    out(`\nalice runs /pool-status in the thread`);
    const status = emu.runCommand(thread.id, alice, 'pool-status');
    const original = await emu.waitFor(() => status.original()?.embeds?.[0], {
      what: 'the /pool-status reply',
    });
    out(indent(embedText(original)));

    // 5. Archive: the session and every process of its tree end at once.
    const session = app.pool.get(thread.id)!;
    const pid = session.pid;
    out(`\nalice archives the thread (agent pid ${pid})`);
    const ta = performance.now();
    emu.archiveThread(thread.id);
    await emu.waitFor(() => session.state === 'closed', { what: 'the session to end', timeoutMs: 10_000 });
    const left = scanProcesses().filter((p) => p.sid === pid && p.state !== 'Z');
    out(
      `  → session ended as "${session.closeReason}" in ${Math.round(performance.now() - ta)} ms; processes of its tree left: ${left.length}`,
    );

    // 6. The history, from SQLite.
    out('\nsession history (SQLite):');
    for (const r of app.store.history()) {
      out(
        `  thread ${r.threadId}  pid ${r.pid}  turns ${r.turns}  ended: ${r.endReason}  kill: ${r.killSignal}${r.forced ? ' (forced)' : ''}  teardown ${Math.round(r.teardownMs ?? 0)} ms`,
      );
    }
    const errors = emu.errors();
    out(
      `\nDiscord requests: ${emu.requestLog.length}, errors: ${errors.length}, rate-limited: ${emu.rateLimited().length}`,
    );
    return errors.length === 0 ? 0 : 1;
  } finally {
    await app?.shutdown();
    await emu.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}
