import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DiscordEmulator } from '@threadwarden/discord-emulator';
import type { APIMessage, APIUser } from 'discord-api-types/v10';
import { expect } from 'vitest';
import { App, type AppOptions } from '../../src/app/App.js';
import { parseConfig } from '../../src/config/Config.js';
import { createLogger, silentLogger } from '../../src/log/logger.js';
import { fakeKiroPath } from '../../src/paths.js';
import { treeMembers } from '../../src/process/ProcessTable.js';
import { alive, identify, killAll, type Pid } from './processes.js';

export const NO_THROTTLE = {
  ws: { buildIdentifyThrottler: async () => ({ waitForIdentify: async () => {} }) },
};

/**
 * The real bot (App) against the local Discord emulator and the fake kiro-cli. `alice` is allowed by user id,
 * `bob` through the allowed role, `mallory` by nothing.
 */
export class BotHarness {
  readonly dir = mkdtempSync(join(tmpdir(), 'tw-bot-'));
  readonly emu: DiscordEmulator;
  app!: App;
  alice!: APIUser;
  bob!: APIUser;
  mallory!: APIUser;
  roleId!: string;
  readonly seen: Pid[] = [];

  private constructor(emu: DiscordEmulator) {
    this.emu = emu;
  }

  /** $HOME of the agents. */
  home(): string {
    const home = join(this.dir, 'home');
    mkdirSync(home, { recursive: true });
    return home;
  }

  static async start(
    envOrFn: Record<string, string> | ((emu: DiscordEmulator) => Record<string, string>) = {},
    emuOptions: ConstructorParameters<typeof DiscordEmulator>[0] = {},
    appOptions: Pick<AppOptions, 'onMessageStep'> = {},
  ): Promise<BotHarness> {
    const emu = new DiscordEmulator(emuOptions);
    await emu.start();
    const h = new BotHarness(emu);
    h.roleId = emu.createRole('agents');
    h.alice = emu.createUser('alice');
    h.bob = emu.createUser('bob', { roles: [h.roleId] });
    h.mallory = emu.createUser('mallory');
    const env = typeof envOrFn === 'function' ? envOrFn(emu) : envOrFn;
    const config = parseConfig({
      DISCORD_TOKEN: 'test-token',
      DISCORD_API_BASE: emu.apiBase,
      DISCORD_GUILD_ID: emu.guildId,
      ALLOWED_USER_IDS: h.alice.id,
      ALLOWED_ROLE_IDS: h.roleId,
      KIRO_CLI_PATH: fakeKiroPath(),
      // Suites that are not parametrized over protocols yet keep the classic fake; pass AGENT_PROTOCOL to choose.
      AGENT_PROTOCOL: 'classic',
      WORKSPACE_ROOT: join(h.dir, 'workspaces'),
      DATABASE_PATH: join(h.dir, 'tw.db'),
      KILL_GRACE_MS: '500',
      HTTP_PORT: '0',
      // Replies compared byte for byte stay free of the usage line; the usage tests turn it on.
      USAGE_FOOTER: 'false',
      ...env,
    });
    h.app = await App.start({
      config,
      logger: process.env.TW_TEST_LOG ? createLogger(process.env.TW_TEST_LOG as 'debug') : silentLogger(),
      clientOptions: NO_THROTTLE,
      editIntervalMs: 1500,
      // The bot's reply streams read the emulator's clock, so a test can age messages by hand.
      ...(emuOptions.clock !== undefined && { discordClock: emuOptions.clock }),
      ...appOptions,
      // The ACP fake keeps kiro's session files under $HOME/.kiro: the test's own home, never the user's.
      env: { PATH: process.env.PATH, HOME: h.home(), DISCORD_TOKEN: 'test-token', ...env },
    });
    return h;
  }

  /** A user mentions the bot in the default channel; resolves to the thread the bot started. */
  async mention(user: APIUser, text: string): Promise<string> {
    const msg = this.emu.userSays(this.emu.defaultChannelId, user, text, { mentionBot: true });
    const thread = await this.emu.waitFor(() => this.emu.threads().find((t) => t.id === msg.id), {
      what: 'the bot to start a thread',
    });
    return thread.id;
  }

  /** Bot messages in a thread posted after `since` (ms), once the streaming placeholder is gone and `count` exist. */
  async botMessages(threadId: string, since: number, count = 1, timeoutMs = 20_000): Promise<APIMessage[]> {
    return this.emu.waitFor(
      () => {
        const msgs = this.emu
          .channelMessages(threadId)
          .filter((m) => m.author.id === this.emu.botUser.id && Date.parse(m.timestamp) >= since - 5);
        const settled = msgs.length >= count && !msgs.some((m) => m.content.includes('⏳ working…'));
        return settled ? msgs : undefined;
      },
      { what: `${count} bot message(s) in thread ${threadId}`, timeoutMs },
    );
  }

  /**
   * Sends a message in a thread and waits until the bot has marked it done (✅) or failed (❌), which it does
   * after the last part of the reply is posted; returns the bot's messages posted after it, in order.
   */
  async turn(threadId: string, user: APIUser, text: string, timeoutMs = 20_000): Promise<APIMessage[]> {
    const sent = this.emu.userSays(threadId, user, text);
    await this.emu.waitFor(
      () => this.emu.reactions(threadId, sent.id).some((r) => r === '✅' || r === '❌'),
      { what: `the bot to finish answering ${JSON.stringify(text.slice(0, 40))}`, timeoutMs },
    );
    return this.emu
      .channelMessages(threadId)
      .filter((m) => m.author.id === this.emu.botUser.id && BigInt(m.id) > BigInt(sent.id));
  }

  /** Waits for a final (not streaming) bot message in the thread whose content passes `check`. */
  reply(threadId: string, check: (content: string) => boolean, timeoutMs = 20_000): Promise<APIMessage> {
    return this.emu.waitFor(
      () =>
        this.emu
          .channelMessages(threadId)
          .find(
            (m) =>
              m.author.id === this.emu.botUser.id && !m.content.includes('⏳ working…') && check(m.content),
          ),
      { what: `a bot reply in ${threadId}`, timeoutMs },
    );
  }

  /** Every live pid of the thread's session tree, remembered for the final check. */
  tree(threadId: string): Pid[] {
    const s = this.app.pool.get(threadId);
    if (!s?.pid || s.pidStartTime === undefined) return [];
    const t = this.app.table;
    const members = treeMembers(t.scan(t.timestamp()), {
      pid: s.pid,
      startTime: s.pidStartTime,
      marker: s.marker,
    });
    const pids = identify(members.filter((m) => m.state !== 'Z').map((m) => m.pid));
    this.seen.push(...pids);
    return pids;
  }

  async dispose(): Promise<void> {
    await this.app.shutdown();
    await this.emu.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  /**
   * `dispose()`, then what every end-to-end test promises: Discord never answered the bot with an error or a 429,
   * the bot never reopened an archived thread by posting in it, and no pid it started survives (any left are
   * killed before the checks fail).
   */
  async disposeChecked(): Promise<void> {
    await this.dispose();
    const left = alive(this.seen);
    await killAll(this.seen);
    expect(
      this.emu.errors().map((e) => ({ route: e.route, status: e.status, response: e.response })),
    ).toEqual([]);
    expect(this.emu.rateLimited()).toEqual([]);
    expect(this.emu.unarchivedByBotPost).toBe(0);
    expect(left, 'processes left after the bot shut down').toEqual([]);
  }
}
