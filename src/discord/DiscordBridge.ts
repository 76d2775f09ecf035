import {
  type AutocompleteInteraction,
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
import type { ResumeOutcome, ToolStatus } from '../agent/types.js';
import { describeEndReason, type EndReason } from '../endReasons.js';
import { PoolFullError, SessionClosedError, SpawnFailedError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import type { SessionPool } from '../pool/SessionPool.js';
import type { UsageSums } from '../store/usageQueries.js';
import { Access } from './Access.js';
import { AttachmentIntake, type IncomingAttachment, refusalText } from './AttachmentIntake.js';
import type { BridgeConfig } from './BridgeConfig.js';
import { COMMANDS } from './commands.js';
import { DiscordThreadSink } from './DiscordThreadSink.js';
import { GlobalRequestPacer } from './GlobalRequestPacer.js';
import { NO_MENTIONS_JS } from './noMentions.js';
import { isPermissionButton, PermissionPrompts } from './PermissionPrompt.js';
import { SlashCommands } from './SlashCommands.js';
import { ThreadLanes } from './ThreadLanes.js';
import type { ThreadSink } from './ThreadSink.js';
import { TurnView } from './TurnView.js';
import { TypingIndicator } from './TypingIndicator.js';

export type { BridgeConfig } from './BridgeConfig.js';

export interface DiscordBridgeOptions {
  readonly config: BridgeConfig;
  readonly pool: SessionPool;
  readonly logger: Logger;
  /** CPU and memory per thread, for /pool-status. */
  readonly usage?: (threadId: string) => { cpu: number; memMb: number } | undefined;
  /** Recorded usage sums per session and thread (SQLite), for /pool-status. */
  readonly usageTotals?: (threadIds: readonly string[]) => UsageSums;
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
  /**
   * Test hook, awaited at each step of handling a message where an archive or delete can land: after the channel
   * is known (fetched when uncached), after the bot started the thread, after the first reaction, and after the
   * session was acquired. Tests land an archive exactly there.
   */
  readonly onStep?: (step: MessageStep, threadId: string) => Promise<void> | void;
}

/** The points of handling a message at which `onStep` is called. */
export type MessageStep = 'channel' | 'thread-started' | 'reacted' | 'acquired';

/** Archive and delete events remembered for messages still being handled (see `closedSince`). */
const CLOSE_EVENTS_KEPT = 10_000;

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

/** Text safe inside a Discord code block: no fence can be closed by agent output. */
function inCodeBlock(text: string, max = 1200): string {
  const body = text.length > max ? `…${text.slice(-max)}` : text;
  return `\`\`\`\n${body.replaceAll('```', 'ʼʼʼ')}\n\`\`\``;
}

/** A queued message whose session ended for these reasons goes to the thread's next session (never for an ended thread or a shutdown). */
const RESEND_AFTER: ReadonlySet<string> = new Set<EndReason>([
  'crashed',
  'cpu_limit',
  'memory_limit',
  'stuck',
  'evicted',
  'idle_ttl',
  'reset',
]);

/** Told when a queued message could not be delivered to any session. */
/** The thread's earlier conversation could not be loaded into its new session (ACP session/load failed). */
const NOT_RESTORED_TEXT = (reason: string | undefined) =>
  `ℹ️ The earlier conversation in this thread could not be restored${reason ? ` (${reason.slice(0, 300)})` : ''}: this session starts afresh and does not remember it.`;
const UNDELIVERED_TEXT = (reason: string) =>
  `⚠️ This message was still waiting for the agent when its session ended (\`${reason}\`); it was not sent. Please send it again.`;

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
  private readonly editIntervalMs: number;
  private readonly clock: () => number;
  /** Threads known to be archived or deleted: nothing is posted there. */
  private readonly closedThreads = new Set<string>();
  /** Archive and delete events so far; the latest one per thread, with its reason (recent ones only). */
  private closeEvents = 0;
  private readonly lastClose = new Map<string, { seq: number; reason: EndReason }>();
  private readonly onStep: DiscordBridgeOptions['onStep'];
  private readonly sinks = new Map<string, DiscordThreadSink>();
  private readonly permissions: PermissionPrompts;
  private readonly commands: SlashCommands;
  private readonly attachments: AttachmentIntake;
  private readonly watched = new WeakSet<AgentSession>();
  private readonly lanes = new ThreadLanes();
  private readonly typing: TypingIndicator;
  private destroyed = false;
  private readonly onSessionEnd = (session: AgentSession, result: CloseResult) =>
    this.sessionEnded(session, result);

  constructor(options: DiscordBridgeOptions) {
    this.cfg = options.config;
    this.pool = options.pool;
    this.log = options.logger.child({ component: 'discord' });
    this.access = new Access(options.config);
    this.editIntervalMs = options.editIntervalMs ?? 1500;
    this.clock = options.clock ?? Date.now;
    this.typing = new TypingIndicator(options.typingIntervalMs ?? 8000);
    this.permissions = new PermissionPrompts(this.log);
    this.attachments = new AttachmentIntake({
      maxFileBytes: this.cfg.attachmentMaxBytes,
      maxMessageBytes: this.cfg.attachmentMaxMessageBytes,
      logger: this.log,
    });
    this.commands = new SlashCommands({
      config: this.cfg,
      pool: this.pool,
      logger: this.log,
      usage: options.usage,
      usageTotals: options.usageTotals,
      allowed: (i) => this.interactionAllowed(i),
    });
    this.onStep = options.onStep;
    this.client = new Client({
      intents: [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages, GatewayIntentBits.MessageContent],
      // Events for threads and messages the client has not cached must still arrive.
      partials: [Partials.Channel, Partials.Message, Partials.GuildMember],
      allowedMentions: { parse: [], repliedUser: false },
      ...options.clientOptions,
      // Discord's global 50/s: the pacer keeps every window Discord can draw under it (discord.js's fixed window
      // opens one latency before Discord's, see GlobalRequestPacer); discord.js's own limit, at the pacer's average
      // rate, makes requests wait before its 15 s request timeout starts rather than inside it.
      rest: {
        api: this.cfg.discordApiBase,
        globalRequestsPerSecond: 36,
        makeRequest: new GlobalRequestPacer().makeRequest(),
        ...options.clientOptions?.rest,
      },
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
    this.typing.close();
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
      this.markClosed(threadId, 'deleted');
      void this.endThread(threadId, 'deleted');
    } else if (d.thread_metadata?.archived === true) {
      this.markClosed(threadId, 'archived');
      void this.endThread(threadId, 'archived');
    } else if (d.thread_metadata?.archived === false) {
      this.closedThreads.delete(threadId);
    }
  }

  private markClosed(threadId: string, reason: EndReason): void {
    this.closedThreads.add(threadId);
    this.lastClose.delete(threadId);
    this.lastClose.set(threadId, { seq: ++this.closeEvents, reason });
    // Only messages being handled now need these, for a few awaits each: keep the recent ones.
    if (this.lastClose.size > CLOSE_EVENTS_KEPT) this.lastClose.delete(this.lastClose.keys().next().value!);
  }

  /** Why the thread was archived or deleted after `seq` (the count when a message arrived), if it was. */
  private closedSince(threadId: string, seq: number): EndReason | undefined {
    const last = this.lastClose.get(threadId);
    return last && last.seq > seq ? last.reason : undefined;
  }

  private async endThread(threadId: string, reason: EndReason): Promise<void> {
    this.typing.stop(threadId);
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
    // A user's message in a thread means the thread was open when it was written (on Discord, posting reopens
    // it). Whatever archives or deletes a thread from here on is newer than this message, and every await below
    // checks for it: no agent starts and nothing is posted for a thread closed meanwhile.
    const seq = this.closeEvents;
    this.closedThreads.delete(message.channelId);
    // For a thread it has not cached (after a restart), discord.js builds the channel from the message alone: no
    // owner, no parent, and a later fetch does not set the owner (only the constructor does). Drop that bare object
    // and build the thread from Discord's answer, or the bot's own thread would look like someone else's.
    let channel = message.channel;
    if (channel.partial) channel = await channel.fetch();
    else if (channel.isThread() && (channel.ownerId === undefined || channel.parentId === null)) {
      this.client.channels.cache.delete(channel.id);
      const fetched = await this.client.channels.fetch(channel.id, { force: true });
      if (fetched?.isThread()) channel = fetched;
    }
    await this.onStep?.('channel', channel.id);
    if (this.closedSince(channel.id, seq)) return;
    const text = message.content.replace(new RegExp(`<@!?${botId}>`, 'g'), '').trim();
    const roles = this.roleIds(message.member);
    const files = incomingAttachments(message);

    if (channel.isThread()) {
      const ours = channel.ownerId === botId;
      if (!ours && !mentioned) return;
      const allowed = this.access.allows({
        userId: message.author.id,
        roleIds: roles,
        channelId: channel.id,
        parentId: channel.parentId,
      });
      if (!allowed) return this.refuse(message);
      if (text === '' && files.length === 0) return;
      return this.runTurn(channel, message, text, seq, files);
    }
    if (!mentioned) return;
    if (!this.access.allows({ userId: message.author.id, roleIds: roles, channelId: channel.id })) {
      return this.refuse(message);
    }
    if (text === '' && files.length === 0) {
      await this.sink(channel.id).react(message.id, '❓');
      return;
    }
    const name = (text || files[0]?.name || '').replace(/\s+/g, ' ').slice(0, 90).trim() || 'agent session';
    const thread = await message.startThread({ name, autoArchiveDuration: 1440 });
    await this.onStep?.('thread-started', thread.id);
    if (this.closedSince(thread.id, seq)) return;
    return this.runTurn(thread, message, text, seq, files);
  }

  private async refuse(message: Message): Promise<void> {
    this.log.info(
      { userId: message.author.id, channelId: message.channelId },
      'refused a message (not allowed)',
    );
    await this.sink(message.channelId).react(message.id, REACTIONS.refused);
  }

  /**
   * One user message: acquire the thread's session, queue the turn, stream the reply, mark the outcome. `seq`:
   * the archive/delete count when the message arrived; a thread closed since gets no agent and no post.
   */
  private async runTurn(
    thread: ThreadChannel,
    message: Message,
    text: string,
    seq: number,
    files: readonly IncomingAttachment[] = [],
  ): Promise<void> {
    // Until this message is in the agent's queue, later messages of the thread wait (downloads take time).
    const release = await this.lanes.enter(thread.id);
    try {
      await this.prepareAndRunTurn(thread, message, text, seq, files, release);
    } finally {
      release();
    }
  }

  private async prepareAndRunTurn(
    thread: ThreadChannel,
    message: Message,
    text: string,
    seq: number,
    files: readonly IncomingAttachment[],
    queued: () => void,
    resent = false,
  ): Promise<void> {
    const sink = this.sink(thread.id);
    const marks = this.sink(message.channelId);
    await marks.react(message.id, REACTIONS.received);
    await this.onStep?.('reacted', thread.id);
    if (this.closedSince(thread.id, seq)) return marks.unreact(message.id, REACTIONS.received);
    let session: AgentSession;
    try {
      session = await this.pool.acquire(thread.id, {
        channelId: thread.parentId ?? undefined,
        userId: message.author.id,
      });
      await this.onStep?.('acquired', thread.id);
      const closed = this.closedSince(thread.id, seq);
      if (closed) {
        // Closed while the agent was starting: end it here (the close that landed may have found nothing).
        await this.pool.close(thread.id, closed);
        return marks.unreact(message.id, REACTIONS.received);
      }
    } catch (err) {
      await marks.unreact(message.id, REACTIONS.received);
      if (this.closedSince(thread.id, seq)) return;
      // The notice first, then the mark: the mark says the bot is done with this message.
      if (err instanceof PoolFullError) {
        await sink.send(`⏳ ${err.message} Nothing was lost: send your message again then.`);
      } else {
        this.log.error({ err, threadId: thread.id }, 'could not start a session');
        await sink.send(`⚠️ The agent session could not be started: ${(err as Error).message}`);
      }
      await marks.react(message.id, REACTIONS.error);
      return;
    }
    this.watch(session, sink);
    // Files go into the thread's workspace before the message is queued; refusals are told, never dropped.
    const intake = await this.attachments.take(session.cwd, message.id, files);
    if (this.closedSince(thread.id, seq)) return marks.unreact(message.id, REACTIONS.received);
    if (intake.refused.length > 0) await sink.send(refusalText(intake.refused));
    if (text === '' && intake.saved.length === 0) {
      await marks.unreact(message.id, REACTIONS.received);
      await marks.react(message.id, REACTIONS.error);
      return;
    }
    let myTurn: number | undefined;
    // Only this message's own turn is read: a message still queued when the session ended shows nothing of another.
    const view = new TurnView(sink, () => (myTurn === undefined ? '' : session.partial()), {
      reply: { editIntervalMs: this.editIntervalMs, now: this.clock },
      usageFooter: this.cfg.usageFooter,
    });
    const onActivity = () => {
      if (myTurn !== undefined && session.currentTurnId === myTurn) view.text();
    };
    const onTool = (tool: { turnId: number; id: string; title: string; status: ToolStatus }) => {
      if (tool.turnId === myTurn) view.tool(tool);
    };
    session.on('activity', onActivity);
    session.on('tool', onTool);
    let resend = false;
    // The outcome mark goes on last, after the progress marks are gone: ✅/❌ means the bot is done with the message
    // (a user may archive the thread as soon as they see it, and nothing can be removed from it then).
    let outcome: string | undefined;
    /** The ⏳ request, sent when the turn starts: it must have landed before it is removed, or it would stay. */
    let working: Promise<void> | undefined;
    try {
      const input = { text, ...(intake.saved.length > 0 && { attachments: intake.saved }) };
      const pending = session.prompt(input, {
        onStart: (turnId) => {
          myTurn = turnId;
          working = marks.react(message.id, REACTIONS.working);
        },
      });
      queued();
      const result = await pending;
      await view.finish(result);
      outcome = REACTIONS.done;
    } catch (err) {
      if (
        err instanceof SessionClosedError &&
        !err.delivered &&
        !resent &&
        RESEND_AFTER.has(err.reason) &&
        !this.closedSince(thread.id, seq)
      ) {
        // Still queued when its session ended (crash, limit, eviction): it never reached the agent, so it goes to
        // the thread's next session instead of being dropped. Once: a second loss is told, not retried.
        resend = true;
      } else if (err instanceof SessionClosedError || err instanceof SpawnFailedError) {
        // The session's end is announced once by sessionEnded(); here just mark the message.
        if (err instanceof SessionClosedError && !err.delivered && myTurn === undefined)
          await sink.send(UNDELIVERED_TEXT(err.reason));
        await view.abort(`(session ended: ${err instanceof SpawnFailedError ? 'spawn_failed' : err.reason})`);
      } else {
        this.log.error({ err, threadId: thread.id }, 'turn failed');
        await sink.send('⚠️ Something went wrong while handling this message; it was not sent to the agent.');
      }
      if (!resend) outcome = REACTIONS.error;
    } finally {
      session.off('activity', onActivity);
      session.off('tool', onTool);
      if (!resend) {
        await marks.unreact(message.id, REACTIONS.received);
        if (working) {
          await working;
          await marks.unreact(message.id, REACTIONS.working);
        }
        if (outcome !== undefined) await marks.react(message.id, outcome);
      }
    }
    if (resend) {
      this.log.info({ threadId: thread.id }, 're-sending a queued message to the thread’s next session');
      await this.prepareAndRunTurn(thread, message, text, seq, files, () => {}, true);
    }
  }

  /** Once per session: typing while busy, permission prompts as buttons. */
  private watch(session: AgentSession, sink: ThreadSink): void {
    if (this.watched.has(session)) return;
    this.watched.add(session);
    session.on('state', (state) => {
      if (state === 'busy') this.typing.start(session.threadId, sink);
      else this.typing.stop(session.threadId);
    });
    session.on('permission', (request) => {
      this.typing.stop(session.threadId);
      void this.permissions.show(session, request, sink);
    });
    session.on('permissionResolved', ({ requestId, optionId }) => {
      void this.permissions.resolved(session.id, requestId, optionId);
    });
    // Told before the first reply: the agent does not remember what was said before in this thread.
    const told = (r: ResumeOutcome) => {
      if (!r.restored) void sink.send(NOT_RESTORED_TEXT(r.reason));
    };
    if (session.resumeOutcome) told(session.resumeOutcome);
    else session.once('resumed', told);
  }

  /** Tells the thread why its session ended, when the user did not ask for it. */
  private async sessionEnded(session: AgentSession, result: CloseResult): Promise<void> {
    this.typing.stop(session.threadId);
    const sink = this.sink(session.threadId);
    await this.permissions.expireSession(session.id, 'the session ended');
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
    if (interaction.isChatInputCommand()) return this.commands.run(interaction);
    if (interaction.isAutocomplete()) return this.commands.autocomplete(interaction);
    if (interaction.isButton() && isPermissionButton(interaction.customId))
      return this.onPermissionButton(interaction);
  }

  private interactionAllowed(
    interaction: ChatInputCommandInteraction | ButtonInteraction | AutocompleteInteraction,
  ): boolean {
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

  private async onPermissionButton(interaction: ButtonInteraction): Promise<void> {
    if (!this.interactionAllowed(interaction)) {
      await interaction.reply({
        content: '🚫 You are not allowed to answer for this agent.',
        flags: MessageFlags.Ephemeral,
      });
      return;
    }
    const outcome = this.permissions.press(interaction.customId, interaction.channelId, interaction.user.id);
    if (outcome.content === undefined) {
      await interaction.reply({
        content: 'This permission prompt has expired.',
        flags: MessageFlags.Ephemeral,
      });
      return;
    }
    // Answered or expired: the question loses its buttons and says what happened, for everyone in the thread.
    await interaction.update({ content: outcome.content, components: [], allowedMentions: NO_MENTIONS_JS });
  }
}

/** A message's attachments as the intake takes them. */
function incomingAttachments(message: Message): IncomingAttachment[] {
  return [...message.attachments.values()].map((a) => ({
    id: a.id,
    name: a.name,
    url: a.url,
    size: a.size,
    contentType: a.contentType,
  }));
}
