import {
  type ButtonInteraction,
  type ChatInputCommandInteraction,
  Client,
  type ClientOptions,
  Events,
  GatewayIntentBits,
  type GuildMember,
  type Interaction,
  type Message,
  MessageFlags,
  Partials,
  RESTEvents,
  Status,
  type ThreadChannel,
} from 'discord.js';
import type { AgentSession, CloseResult } from '../agent/AgentSession.js';
import type { PermissionKind } from '../agent/types.js';
import type { Config } from '../config/Config.js';
import { describeEndReason, type EndReason } from '../endReasons.js';
import { PoolFullError, SessionClosedError, SpawnFailedError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { SessionPool } from '../pool/SessionPool.js';
import { Access } from './Access.js';
import { COMMANDS } from './commands.js';
import { DiscordThreadSink } from './DiscordThreadSink.js';
import { poolStatusEmbed } from './poolStatusEmbed.js';
import { ReplyStream } from './ReplyStream.js';
import type { SinkButton, ThreadSink } from './ThreadSink.js';

export type BridgeConfig = Pick<
  Config,
  | 'discordToken'
  | 'discordApiBase'
  | 'discordGuildId'
  | 'allowedUserIds'
  | 'allowedRoleIds'
  | 'allowedChannelIds'
  | 'sessionIdleTtlMs'
  | 'maxCpuPercent'
  | 'maxMemoryMb'
  | 'maxStuckMs'
>;

export interface DiscordBridgeOptions {
  readonly config: BridgeConfig;
  readonly pool: SessionPool;
  readonly logger: Logger;
  /** CPU and memory per thread, for /pool-status. */
  readonly usage?: (threadId: string) => { cpu: number; memMb: number } | undefined;
  /** Called for every REST 429 Discord answers. */
  readonly onRateLimited?: (route: string) => void;
  /** Extra discord.js client options (tests pass a no-op identify throttler). */
  readonly clientOptions?: Partial<ClientOptions>;
  /** Minimum time between edits of a streaming reply, ms. */
  readonly editIntervalMs?: number;
  /** Wall clock for reply streams (their messages' age against Discord's one-hour edit limit). Default Date.now. */
  readonly clock?: () => number;
  /** How often the typing indicator is renewed while the agent works, ms (Discord shows it for 10 s). */
  readonly typingIntervalMs?: number;
}

/** Status reactions on the user's message. */
export const REACTIONS = { received: '👀', working: '⏳', done: '✅', error: '❌', refused: '🚫' } as const;

/** End reasons the user did not cause and is told about in the thread. */
const NOTIFY: ReadonlySet<EndReason> = new Set([
  'idle_ttl',
  'evicted',
  'cpu_limit',
  'memory_limit',
  'stuck',
  'crashed',
  'spawn_failed',
]);

type PermissionAnswer = 'allow' | 'deny' | 'always';
/** Which of the agent's options each button picks (until the buttons are built from the options themselves). */
const ANSWER_KIND: Record<PermissionAnswer, PermissionKind> = {
  allow: 'allow_once',
  deny: 'reject_once',
  always: 'allow_always',
};

const PERMISSION_BUTTONS = (sessionId: string): SinkButton[] => [
  { customId: `perm:${sessionId}:allow`, label: 'Allow', style: 'success' },
  { customId: `perm:${sessionId}:deny`, label: 'Deny', style: 'danger' },
  { customId: `perm:${sessionId}:always`, label: 'Always', style: 'secondary' },
];

/** Text safe inside a Discord code block: no fence can be closed by agent output. */
function inCodeBlock(text: string, max = 1200): string {
  const body = text.length > max ? `…${text.slice(-max)}` : text;
  return `\`\`\`\n${body.replaceAll('```', 'ʼʼʼ')}\n\`\`\``;
}

/**
 * Bridges Discord threads to agent sessions: routing and access, streaming replies, status reactions, permission
 * buttons, slash commands, and teardown on archive and delete (also for threads the client never cached).
 */
export class DiscordBridge {
  readonly client: Client;
  private readonly cfg: BridgeConfig;
  private readonly pool: SessionPool;
  private readonly log: Logger;
  private readonly access: Access;
  private readonly usage: DiscordBridgeOptions['usage'];
  private readonly editIntervalMs: number;
  private readonly clock: () => number;
  private readonly typingIntervalMs: number;
  /** Threads known to be archived or deleted: nothing is posted there. */
  private readonly closedThreads = new Set<string>();
  private readonly sinks = new Map<string, DiscordThreadSink>();
  /** Permission prompt message per session, so it can be expired when the session ends. */
  private readonly permissionMessages = new Map<
    string,
    { threadId: string; messageId: string; text: string }
  >();
  private readonly watched = new WeakSet<AgentSession>();
  private readonly typingTimers = new Map<string, NodeJS.Timeout>();
  private destroyed = false;
  private readonly onSessionEnd = (session: AgentSession, result: CloseResult) =>
    this.sessionEnded(session, result);

  constructor(options: DiscordBridgeOptions) {
    this.cfg = options.config;
    this.pool = options.pool;
    this.log = options.logger.child({ component: 'discord' });
    this.access = new Access(options.config);
    this.usage = options.usage;
    this.editIntervalMs = options.editIntervalMs ?? 1500;
    this.clock = options.clock ?? Date.now;
    this.typingIntervalMs = options.typingIntervalMs ?? 8000;
    this.client = new Client({
      intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages, GatewayIntentBits.MessageContent],
      // Events for threads and messages the client has not cached must still arrive.
      partials: [Partials.Channel, Partials.Message, Partials.GuildMember],
      allowedMentions: { parse: [], repliedUser: false },
      ...options.clientOptions,
      rest: { api: this.cfg.discordApiBase, ...options.clientOptions?.rest },
    });
    this.client.rest.on(RESTEvents.Response, (request, response) => {
      if (response.status === 429) {
        this.log.warn({ route: request.route }, 'Discord answered 429');
        options.onRateLimited?.(request.route);
      }
    });
    this.client.on(Events.MessageCreate, (m) => this.guard('message', () => this.onMessage(m)));
    this.client.on(Events.InteractionCreate, (i) => this.guard('interaction', () => this.onInteraction(i)));
    this.client.on(Events.Raw, (packet: { t?: string; d?: unknown }) =>
      this.guard('raw', () => this.onRaw(packet)),
    );
    this.client.on(Events.Error, (err) => this.log.error({ err }, 'discord client error'));
    this.client.on(Events.ShardDisconnect, (ev) => this.log.warn({ code: ev.code }, 'gateway disconnected'));
    this.client.on(Events.ShardResume, () => this.log.info('gateway resumed'));
    this.pool.on('sessionEnd', this.onSessionEnd);
  }

  /** Logs in, waits for READY and registers the slash commands (in DISCORD_GUILD_ID when set, else globally). */
  async start(): Promise<void> {
    const ready = new Promise<void>((resolve) => this.client.once(Events.ClientReady, () => resolve()));
    await this.client.login(this.cfg.discordToken);
    await ready;
    const app = this.client.application;
    if (app) {
      if (this.cfg.discordGuildId) await app.commands.set(COMMANDS, this.cfg.discordGuildId);
      else await app.commands.set(COMMANDS);
    }
    this.log.info(
      { user: this.client.user?.tag, guild: this.cfg.discordGuildId ?? 'global' },
      'discord ready',
    );
  }

  /** True while the gateway connection is up. */
  get connected(): boolean {
    // The manager stays "ready" across reconnects; each shard's own status says whether it is connected now.
    return (
      !this.destroyed &&
      this.client.isReady() &&
      this.client.ws.shards.every((shard) => shard.status === Status.Ready)
    );
  }

  /** Idempotent: stops typing timers, detaches from the pool, closes the gateway. */
  async destroy(): Promise<void> {
    if (this.destroyed) return;
    this.destroyed = true;
    for (const t of this.typingTimers.values()) clearInterval(t);
    this.typingTimers.clear();
    this.pool.off('sessionEnd', this.onSessionEnd);
    await this.client.destroy();
  }

  /** Runs an event handler so that no failure, however odd the payload, escapes into the process. */
  private guard(what: string, fn: () => unknown): void {
    try {
      const r = fn();
      if (r instanceof Promise)
        r.catch((err: unknown) => this.log.error({ err, what }, 'event handler failed'));
    } catch (err) {
      this.log.error({ err, what }, 'event handler failed');
    }
  }

  private sink(channelId: string): DiscordThreadSink {
    let s = this.sinks.get(channelId);
    if (!s) {
      s = new DiscordThreadSink(channelId, this.client.rest, this.log, () =>
        this.closedThreads.has(channelId),
      );
      this.sinks.set(channelId, s);
    }
    return s;
  }

  /** THREAD_UPDATE and THREAD_DELETE straight from the gateway: discord.js drops them for uncached threads. */
  private onRaw(packet: { t?: string; d?: unknown }): void {
    if (packet.t !== 'THREAD_UPDATE' && packet.t !== 'THREAD_DELETE') return;
    const d = packet.d as { id?: unknown; thread_metadata?: { archived?: unknown } } | undefined;
    if (typeof d?.id !== 'string') return;
    const threadId = d.id;
    if (packet.t === 'THREAD_DELETE') {
      this.closedThreads.add(threadId);
      void this.endThread(threadId, 'deleted');
    } else if (d.thread_metadata?.archived === true) {
      this.closedThreads.add(threadId);
      void this.endThread(threadId, 'archived');
    } else if (d.thread_metadata?.archived === false) {
      this.closedThreads.delete(threadId);
    }
  }

  private async endThread(threadId: string, reason: EndReason): Promise<void> {
    this.stopTyping(threadId);
    const result = await this.pool.close(threadId, reason);
    if (result)
      this.log.info({ threadId, reason, ms: Math.round(result.kill.durationMs) }, 'thread ended its session');
  }

  private roleIds(member: GuildMember | null | undefined): string[] {
    return member ? [...member.roles.cache.keys()] : [];
  }

  private async onMessage(message: Message): Promise<void> {
    if (message.author.bot || !message.inGuild() || this.destroyed) return;
    const botId = this.client.user?.id;
    if (!botId) return;
    const mentioned = message.mentions.users.has(botId);
    const channel = message.channel.partial ? await message.channel.fetch() : message.channel;
    const text = message.content.replace(new RegExp(`<@!?${botId}>`, 'g'), '').trim();
    const roles = this.roleIds(message.member);

    if (channel.isThread()) {
      const ours = channel.ownerId === botId;
      if (!ours && !mentioned) return;
      this.closedThreads.delete(channel.id);
      const allowed = this.access.allows({
        userId: message.author.id,
        roleIds: roles,
        channelId: channel.id,
        parentId: channel.parentId,
      });
      if (!allowed) return this.refuse(message);
      if (text === '') return;
      return this.runTurn(channel, message, text);
    }
    if (!mentioned) return;
    if (!this.access.allows({ userId: message.author.id, roleIds: roles, channelId: channel.id })) {
      return this.refuse(message);
    }
    if (text === '') {
      await this.sink(channel.id).react(message.id, '❓');
      return;
    }
    const name = text.replace(/\s+/g, ' ').slice(0, 90).trim() || 'agent session';
    const thread = await message.startThread({ name, autoArchiveDuration: 1440 });
    return this.runTurn(thread, message, text);
  }

  private async refuse(message: Message): Promise<void> {
    this.log.info(
      { userId: message.author.id, channelId: message.channelId },
      'refused a message (not allowed)',
    );
    await this.sink(message.channelId).react(message.id, REACTIONS.refused);
  }

  /** One user message: acquire the thread's session, queue the turn, stream the reply, mark the outcome. */
  private async runTurn(thread: ThreadChannel, message: Message, text: string): Promise<void> {
    const sink = this.sink(thread.id);
    const marks = this.sink(message.channelId);
    await marks.react(message.id, REACTIONS.received);
    let session: AgentSession;
    try {
      session = await this.pool.acquire(thread.id, {
        channelId: thread.parentId ?? undefined,
        userId: message.author.id,
      });
    } catch (err) {
      await marks.unreact(message.id, REACTIONS.received);
      await marks.react(message.id, REACTIONS.error);
      if (err instanceof PoolFullError) {
        await sink.send(`⏳ ${err.message} Nothing was lost: send your message again then.`);
      } else {
        this.log.error({ err, threadId: thread.id }, 'could not start a session');
        await sink.send(`⚠️ The agent session could not be started: ${(err as Error).message}`);
      }
      return;
    }
    this.watch(session, sink);
    let myTurn: number | undefined;
    const stream = new ReplyStream(sink, () => session.partial(), {
      editIntervalMs: this.editIntervalMs,
      now: this.clock,
    });
    const onActivity = () => {
      if (myTurn !== undefined && session.currentTurnId === myTurn) stream.update();
    };
    session.on('activity', onActivity);
    try {
      const result = await session.prompt(text, {
        onStart: (turnId) => {
          myTurn = turnId;
          void marks.react(message.id, REACTIONS.working);
        },
      });
      await stream.finish(result.text, result.cancelled ? '-# (turn cancelled)' : undefined);
      await marks.react(message.id, REACTIONS.done);
    } catch (err) {
      if (err instanceof SessionClosedError || err instanceof SpawnFailedError) {
        // The session's end is announced once by sessionEnded(); here just mark the message.
        await stream.abort(
          `(session ended: ${err instanceof SpawnFailedError ? 'spawn_failed' : err.reason})`,
        );
      } else {
        this.log.error({ err, threadId: thread.id }, 'turn failed');
        await sink.send('⚠️ Something went wrong while handling this message; it was not sent to the agent.');
      }
      await marks.react(message.id, REACTIONS.error);
    } finally {
      session.off('activity', onActivity);
      await marks.unreact(message.id, REACTIONS.received);
      if (myTurn !== undefined) await marks.unreact(message.id, REACTIONS.working);
    }
  }

  /** Once per session: typing while busy, permission prompts as buttons. */
  private watch(session: AgentSession, sink: ThreadSink): void {
    if (this.watched.has(session)) return;
    this.watched.add(session);
    session.on('state', (state) => {
      if (state === 'busy') this.startTyping(session.threadId, sink);
      else this.stopTyping(session.threadId);
    });
    session.on('permission', ({ title: text }) => {
      this.stopTyping(session.threadId);
      const content = `🔐 The agent asks for permission:\n> ${text.replaceAll('\n', ' ')}`;
      void sink.send(content, PERMISSION_BUTTONS(session.id)).then((messageId) => {
        if (messageId)
          this.permissionMessages.set(session.id, { threadId: session.threadId, messageId, text: content });
      });
    });
  }

  private startTyping(threadId: string, sink: ThreadSink): void {
    if (this.typingTimers.has(threadId)) return;
    void sink.typing();
    const timer = setInterval(() => void sink.typing(), this.typingIntervalMs);
    timer.unref();
    this.typingTimers.set(threadId, timer);
  }

  private stopTyping(threadId: string): void {
    clearInterval(this.typingTimers.get(threadId));
    this.typingTimers.delete(threadId);
  }

  /** Tells the thread why its session ended, when the user did not ask for it. */
  private async sessionEnded(session: AgentSession, result: CloseResult): Promise<void> {
    this.stopTyping(session.threadId);
    const sink = this.sink(session.threadId);
    const prompt = this.permissionMessages.get(session.id);
    if (prompt) {
      this.permissionMessages.delete(session.id);
      await sink.edit(prompt.messageId, `${prompt.text}\n-# (expired: the session ended)`, []);
    }
    if (!NOTIFY.has(result.reason) || this.destroyed) return;
    let text = `⚠️ The agent session ended because ${describeEndReason(result.reason)} (\`${result.reason}\`).`;
    if (
      (result.reason === 'crashed' || result.reason === 'spawn_failed') &&
      result.lastOutput.trim() !== ''
    ) {
      text += `\nLast output:\n${inCodeBlock(result.lastOutput)}`;
    }
    text += '\nYour next message starts a new session.';
    await sink.send(text);
  }

  private async onInteraction(interaction: Interaction): Promise<void> {
    if (interaction.isChatInputCommand()) return this.onCommand(interaction);
    if (interaction.isButton() && interaction.customId.startsWith('perm:'))
      return this.onPermissionButton(interaction);
  }

  private interactionAllowed(interaction: ChatInputCommandInteraction | ButtonInteraction): boolean {
    const channel = interaction.channel;
    const parentId = channel?.isThread() ? channel.parentId : null;
    const member = interaction.member as GuildMember | { roles: string[] } | null;
    const roleIds = !member
      ? []
      : Array.isArray(member.roles)
        ? member.roles
        : [...member.roles.cache.keys()];
    return this.access.allows({
      userId: interaction.user.id,
      roleIds,
      channelId: interaction.channelId ?? '',
      parentId,
    });
  }

  private async onCommand(interaction: ChatInputCommandInteraction): Promise<void> {
    // Acknowledge first: Discord's 3 s deadline does not wait for a tree kill.
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    if (!this.interactionAllowed(interaction)) {
      await interaction.editReply({
        content: '🚫 You are not allowed to use this bot here.',
        allowedMentions: NO_MENTIONS_JS,
      });
      return;
    }
    const threadId = interaction.channelId;
    switch (interaction.commandName) {
      case 'pool-status': {
        const embed = poolStatusEmbed({
          sessions: this.pool.list(),
          max: this.pool.max,
          ended: this.pool.endedCounts(),
          usage: (id) => this.usage?.(id),
          limits: {
            idleTtlMs: this.cfg.sessionIdleTtlMs,
            maxCpuPercent: this.cfg.maxCpuPercent,
            maxMemoryMb: this.cfg.maxMemoryMb,
            maxStuckMs: this.cfg.maxStuckMs,
          },
          now: Date.now(),
        });
        await interaction.editReply({ embeds: [embed], allowedMentions: NO_MENTIONS_JS });
        return;
      }
      case 'cancel': {
        const session = this.pool.get(threadId);
        const ok = session?.cancel() ?? false;
        await interaction.editReply({
          content: ok
            ? 'Sent Ctrl-C: the current turn is being cancelled.'
            : 'No turn is running in this thread.',
          allowedMentions: NO_MENTIONS_JS,
        });
        return;
      }
      case 'reset': {
        const result = await this.pool.close(threadId, 'reset');
        await interaction.editReply({
          content: result
            ? `Session ended (${result.kill.pids.length} process(es) stopped in ${Math.round(result.kill.durationMs)} ms). Your next message starts a new session.`
            : 'This thread has no live session.',
          allowedMentions: NO_MENTIONS_JS,
        });
        return;
      }
      default:
        await interaction.editReply({ content: 'Unknown command.', allowedMentions: NO_MENTIONS_JS });
    }
  }

  private async onPermissionButton(interaction: ButtonInteraction): Promise<void> {
    const [, sessionId, answer] = interaction.customId.split(':');
    if (!this.interactionAllowed(interaction)) {
      await interaction.reply({
        content: '🚫 You are not allowed to answer for this agent.',
        flags: MessageFlags.Ephemeral,
      });
      return;
    }
    const session = this.pool.get(interaction.channelId ?? '');
    const valid = answer === 'allow' || answer === 'deny' || answer === 'always';
    const question = session && session.id === sessionId ? session.pendingPermission : undefined;
    const option = valid ? question?.options.find((o) => o.kind === ANSWER_KIND[answer]) : undefined;
    if (!session || !question || !option || !session.answerPermission(question.requestId, option.optionId)) {
      await interaction.reply({
        content: 'This permission prompt has expired.',
        flags: MessageFlags.Ephemeral,
      });
      return;
    }
    this.permissionMessages.delete(session.id);
    const label = { allow: 'Allowed', deny: 'Denied', always: 'Always allowed' }[answer as PermissionAnswer];
    await interaction.update({
      content: `${interaction.message.content}\n-# ${label} by <@${interaction.user.id}>`,
      components: [],
      allowedMentions: NO_MENTIONS_JS,
    });
  }
}

/** discord.js's spelling of "ping nobody". */
const NO_MENTIONS_JS = { parse: [], repliedUser: false } as const;
