import { EventEmitter } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type APIApplicationCommand,
  type APIChannel,
  type APIMessage,
  type APIUser,
  ChannelType,
} from 'discord-api-types/v10';
import { type AttachmentDownload, AttachmentFiles, type UserAttachment } from './AttachmentFiles.js';
import { applicationRoutes } from './applicationRoutes.js';
import { channelRoutes } from './channelRoutes.js';
import type { EmulatorEvents, RequestLogEntry } from './EmulatorEvents.js';
import { type EmulatorLogger, silentEmulatorLogger } from './EmulatorLogger.js';
import { type EmulatedMessage, EmulatorState } from './EmulatorState.js';
import { Gateway, PRIVILEGED_INTENTS } from './Gateway.js';
import { type CommandOptionsInput, type InteractionHandle, Interactions } from './Interactions.js';
import type { Limit } from './RateLimiter.js';
import { RestRouter } from './RestRouter.js';

export type { AttachmentDownload, UserAttachment } from './AttachmentFiles.js';
export type { DispatchEvent, EmulatorEvents, RequestLogEntry } from './EmulatorEvents.js';
export type { EmulatorLogger } from './EmulatorLogger.js';
export type { EmulatedMessage } from './EmulatorState.js';
export type { CommandOptionsInput, InteractionHandle, InteractionResponse } from './Interactions.js';
export type { Limit } from './RateLimiter.js';

export interface EmulatorOptions {
  /** The only token IDENTIFY (else close 4004) and REST (else 401) accept. Default `'test-token'`. */
  readonly botToken?: string;
  /** The bot user's name. Default `'threadwarden'`. */
  readonly botName?: string;
  /** Privileged intents granted; IDENTIFY asking for another privileged intent is closed with 4014. Default: all. */
  readonly intentsAllowed?: number;
  /** Message POSTs per channel; `false`: no per-channel bucket. Default 5 per 5000 ms, like Discord. */
  readonly channelRateLimit?: Limit | false;
  /** Requests with the bot token across all routes. Default 50 per 1000 ms, like Discord. */
  readonly globalRateLimit?: Limit;
  /** Bucket of every other route, per channel/guild/webhook. Default 50 per 1000 ms. */
  readonly routeRateLimit?: Limit;
  /**
   * Edits of messages older than an hour, per channel, before 400 code 30046; `false`: unlimited. Discord does
   * not publish the number. Default 5 per 60 000 ms.
   */
  readonly oldMessageEditLimit?: Limit | false;
  /** Time an interaction's first response may take, ms; later answers get 404 code 10062. Default 3000. */
  readonly interactionDeadlineMs?: number;
  /** Heartbeat interval sent in HELLO, ms. Default 41 250, like Discord. */
  readonly heartbeatIntervalMs?: number;
  /**
   * The emulator's clock (timestamps, snowflakes, deadlines, token expiry, rate-limit windows), ms since the Unix
   * epoch. Default `Date.now`. With a custom clock, no real timer rejects an unanswered interaction.
   */
  readonly clock?: () => number;
  /** A pino-like logger. Default: silent. */
  readonly logger?: EmulatorLogger;
}

/** How `waitFor` polls: every this many ms. */
const POLL_MS = 10;

function checkLimit(name: string, value: unknown): void {
  const v = value as Partial<Limit> | undefined;
  const ok =
    v !== undefined &&
    Number.isInteger(v.limit) &&
    (v.limit ?? 0) >= 1 &&
    typeof v.windowMs === 'number' &&
    v.windowMs > 0;
  if (!ok) {
    throw new TypeError(
      `DiscordEmulator: option ${name} must be { limit: integer >= 1, windowMs: number > 0 }, got ${JSON.stringify(value)}`,
    );
  }
}

function checkMs(name: string, value: number): void {
  if (!Number.isFinite(value) || value < 0)
    throw new RangeError(`DiscordEmulator: option ${name} must be a number of ms >= 0, got ${value}`);
}

/**
 * A small local Discord on 127.0.0.1: REST under `/api/v10` and a JSON gateway, enough for a real discord.js 14
 * client to log in, receive messages, threads and interactions, and answer. It enforces the limits a bot must
 * respect (shared/discord.md), answers rate-limit headers like Discord, keeps a request log, and offers a driver
 * API to play users in tests and the demo.
 */
export class DiscordEmulator {
  /** `request`, `messageCreate`, `messageUpdate`, `messageDelete` and `dispatch`. */
  readonly events = new EventEmitter<EmulatorEvents>();
  readonly botToken: string;
  readonly applicationId: string;
  readonly guildId: string;
  readonly botUser: APIUser;
  /** The text channel that exists from the start ("general"). */
  readonly defaultChannelId: string;
  /** Times a bot post reopened an archived thread (a well-behaved bot never does). */
  unarchivedByBotPost = 0;

  private readonly log: RequestLogEntry[] = [];
  private readonly now: () => number;
  private readonly logger: EmulatorLogger;
  private readonly state: EmulatorState;
  private readonly gateway: Gateway;
  private readonly router: RestRouter;
  private readonly interactions: Interactions;
  private readonly server: Server;
  private readonly files = new AttachmentFiles(() => `http://127.0.0.1:${this._port}`);
  private _port = 0;
  private started: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;

  constructor(options: EmulatorOptions = {}) {
    const channelRateLimit = options.channelRateLimit ?? { limit: 5, windowMs: 5000 };
    const globalRateLimit = options.globalRateLimit ?? { limit: 50, windowMs: 1000 };
    const routeRateLimit = options.routeRateLimit ?? { limit: 50, windowMs: 1000 };
    const oldMessageEditLimit = options.oldMessageEditLimit ?? { limit: 5, windowMs: 60_000 };
    const interactionDeadlineMs = options.interactionDeadlineMs ?? 3000;
    const heartbeatIntervalMs = options.heartbeatIntervalMs ?? 41_250;
    if (channelRateLimit !== false) checkLimit('channelRateLimit', channelRateLimit);
    if (oldMessageEditLimit !== false) checkLimit('oldMessageEditLimit', oldMessageEditLimit);
    checkLimit('globalRateLimit', globalRateLimit);
    checkLimit('routeRateLimit', routeRateLimit);
    checkMs('interactionDeadlineMs', interactionDeadlineMs);
    checkMs('heartbeatIntervalMs', heartbeatIntervalMs);
    if (options.botToken !== undefined && options.botToken.length === 0)
      throw new TypeError('DiscordEmulator: option botToken must be a non-empty string');

    this.botToken = options.botToken ?? 'test-token';
    this.now = options.clock ?? Date.now;
    this.logger = options.logger ?? silentEmulatorLogger;
    this.state = new EmulatorState(this.now, (t, d) => this.dispatch(t, d), this.events, options.botName);
    this.applicationId = this.state.applicationId;
    this.guildId = this.state.guildId;
    this.botUser = this.state.botUser;
    this.gateway = new Gateway({
      token: this.botToken,
      intentsAllowed: options.intentsAllowed ?? PRIVILEGED_INTENTS,
      heartbeatIntervalMs,
      botUser: this.botUser,
      applicationId: this.applicationId,
      guildId: this.guildId,
      url: () => this.gatewayUrl,
      guildCreate: () => this.state.guildCreate(),
      members: () => [...this.state.users.keys()].map((id) => this.state.member(id)),
      logger: this.logger,
    });
    this.interactions = new Interactions({
      state: this.state,
      now: this.now,
      deadlineMs: interactionDeadlineMs,
      deadlineTimers: options.clock === undefined,
    });
    this.router = new RestRouter({
      token: this.botToken,
      globalLimit: globalRateLimit,
      routeLimit: routeRateLimit,
      now: this.now,
      logger: this.logger,
      events: this.events,
      log: this.log,
    });
    this.router.add(
      ...applicationRoutes({ state: this.state, gatewayUrl: () => this.gatewayUrl }),
      ...channelRoutes({
        state: this.state,
        now: this.now,
        channelRateLimit,
        oldMessageEditLimit,
        onReopenedByBot: (threadId) => {
          this.unarchivedByBotPost++;
          this.logger.warn({ threadId }, 'emulator: a bot post reopened an archived thread');
        },
      }),
      ...this.interactions.routes(),
    );
    this.defaultChannelId = this.state.addTextChannel('general');
    this.server = createServer((req, res) => {
      if (this.files.handle(req, res)) return;
      this.router.handle(req, res).catch((err: unknown) => {
        this.logger.error({ err }, 'emulator REST: request failed');
        res.destroy();
      });
    });
    this.server.on('upgrade', (req, socket, head: Buffer) => this.gateway.handleUpgrade(req, socket, head));
  }

  /** Listens on 127.0.0.1 on a random free port. */
  start(): Promise<void> {
    if (this.stopped) return Promise.reject(new Error('DiscordEmulator: start() after stop()'));
    this.started ??= new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(0, '127.0.0.1', () => {
        this.server.off('error', reject);
        this._port = (this.server.address() as AddressInfo).port;
        this.logger.info({ port: this._port }, 'emulator: listening');
        resolve();
      });
    });
    return this.started;
  }

  /** Closes every gateway socket and HTTP connection, then the server. Idempotent: the same promise each time. */
  stop(): Promise<void> {
    this.stopped ??= (async () => {
      this.interactions.close();
      await this.gateway.close();
      if (!this.server.listening) return;
      this.server.closeAllConnections();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.logger.info({ port: this._port }, 'emulator: stopped');
    })();
    return this.stopped;
  }

  get port(): number {
    return this._port;
  }

  /** REST base for discord.js's `rest.api` (it appends `/v10`). */
  get apiBase(): string {
    return `http://127.0.0.1:${this._port}/api`;
  }

  get gatewayUrl(): string {
    return `ws://127.0.0.1:${this._port}`;
  }

  /** Successful IDENTIFYs since start. */
  get identifyCount(): number {
    return this.gateway.identifyCount;
  }

  /** RESUMEs received; each got op 9 `false`, so the client identified again. */
  get resumeCount(): number {
    return this.gateway.resumeCount;
  }

  /** Identified gateway connections that are open. */
  get connectedClients(): number {
    return this.gateway.connectedClients;
  }

  /** Attachment paths requested so far, in order, held ones included (answered or not). */
  get attachmentRequests(): readonly string[] {
    return this.files.requested;
  }

  /** Every GET of a user's attachment URL, in order (status 200 with the bytes sent, or the error status). */
  get attachmentDownloads(): readonly AttachmentDownload[] {
    return this.files.downloads;
  }

  /** Every REST request answered, in order. */
  get requestLog(): readonly RequestLogEntry[] {
    return this.log;
  }

  // ---- the guild ------------------------------------------------------------------------------------------

  /** A guild member (roles must exist, see createRole). */
  createUser(name: string, opts: { roles?: readonly string[]; bot?: boolean } = {}): APIUser {
    return this.state.addUser(name, opts);
  }

  createRole(name: string): string {
    return this.state.addRole(name);
  }

  /** A text channel; its id. */
  createTextChannel(name: string): string {
    return this.state.addTextChannel(name);
  }

  /** A thread someone else started (owner is a user, not the bot); THREAD_CREATE is dispatched. Its id. */
  createThread(
    parentId: string,
    name: string,
    ownerId: string,
    opts: { private?: boolean; archived?: boolean } = {},
  ): string {
    const thread = this.state.createThread(parentId, name, ownerId, {
      type: opts.private ? ChannelType.PrivateThread : ChannelType.PublicThread,
    });
    if (opts.archived) this.state.setArchived(thread, true);
    return thread.id;
  }

  // ---- users act ------------------------------------------------------------------------------------------

  /**
   * A user posts: MESSAGE_CREATE with member and mentions (the bot's when `mentionBot`, which prefixes the
   * content with `<@botId> `). As on Discord, a post reopens an archived thread unless it is locked.
   */
  userSays(
    channelId: string,
    user: APIUser,
    content: string,
    opts: { mentionBot?: boolean; attachments?: readonly UserAttachment[] } = {},
  ): APIMessage {
    if (!this.state.users.has(user.id))
      throw new Error(`userSays: ${user.username} is not a member of the guild`);
    const thread = this.state.thread(channelId);
    if (thread?.thread_metadata.archived) {
      if (thread.thread_metadata.locked)
        throw new Error(`userSays: thread ${channelId} is archived and locked`);
      this.state.setArchived(thread, false);
    }
    const text = opts.mentionBot ? `<@${this.botUser.id}> ${content}` : content;
    const attachments = opts.attachments
      ? this.files.add(channelId, opts.attachments, () => this.state.id())
      : undefined;
    return this.state.publicMessage(
      this.state.createMessage(channelId, user, { content: text, ...(attachments && { attachments }) }),
    );
  }

  /** Archives a thread (optionally locking it); THREAD_UPDATE carries the whole channel. */
  archiveThread(threadId: string, opts: { locked?: boolean } = {}): void {
    this.state.setArchived(this.requireThread(threadId), true, opts.locked);
  }

  /** Reopens a thread (and unlocks it); THREAD_UPDATE. */
  unarchiveThread(threadId: string): void {
    this.state.setArchived(this.requireThread(threadId), false, false);
  }

  /** THREAD_DELETE `{id, guild_id, parent_id, type}`; later REST on it is 404 code 10003. */
  deleteThread(threadId: string): void {
    this.requireThread(threadId);
    this.state.deleteChannel(threadId);
  }

  /** Deletes a text channel (CHANNEL_DELETE) and its threads. */
  deleteChannel(channelId: string): void {
    this.state.deleteChannel(channelId);
  }

  /** A user runs a slash command: INTERACTION_CREATE type 2. */
  runCommand(
    channelId: string,
    user: APIUser,
    name: string,
    options?: CommandOptionsInput,
  ): InteractionHandle {
    return this.interactions.runCommand(channelId, user, name, options);
  }

  /** A user types into option `option` of `/name`: INTERACTION_CREATE type 4; the bot answers choices (type 8). */
  autocomplete(
    channelId: string,
    user: APIUser,
    name: string,
    option: string,
    typed: string,
  ): InteractionHandle {
    return this.interactions.autocomplete(channelId, user, name, option, typed);
  }

  /** A user presses a button: INTERACTION_CREATE type 3 with the message. */
  pressButton(channelId: string, messageId: string, customId: string, user: APIUser): InteractionHandle {
    return this.interactions.pressButton(channelId, messageId, customId, user);
  }

  /** Sends any gateway dispatch as is, to every identified connection (for malformed-payload tests). */
  dispatchRaw(t: string, d: unknown): void {
    this.events.emit('dispatch', { t, d });
    this.gateway.dispatch(t, d, { raw: true });
  }

  // ---- what happened --------------------------------------------------------------------------------------

  /** A channel's messages, current state (edits applied), in order, the bot's included. */
  channelMessages(channelId: string): EmulatedMessage[] {
    return this.state.channelMessages(channelId);
  }

  /** Every live thread, archived or not, with thread_metadata. */
  threads(): APIChannel[] {
    return this.state.threads().map((t) => this.state.copy(t));
  }

  thread(threadId: string): APIChannel | undefined {
    const t = this.state.thread(threadId);
    return t && this.state.copy(t);
  }

  /** The bot's current reactions on a message. */
  reactions(channelId: string, messageId: string): string[] {
    return this.state.reactions(channelId, messageId);
  }

  /** Commands registered for a guild, or global ones without a guild id. */
  registeredCommands(guildId?: string): APIApplicationCommand[] {
    return this.state.copy(this.state.commands.get(guildId ?? 'global') ?? []);
  }

  /** Requests answered with status >= 400. */
  errors(): RequestLogEntry[] {
    return this.log.filter((e) => e.status >= 400);
  }

  /** Requests answered 429. */
  rateLimited(): RequestLogEntry[] {
    return this.log.filter((e) => e.status === 429);
  }

  // ---- faults ---------------------------------------------------------------------------------------------

  /** The next `count` REST requests (to routes whose name matches `route`, if given) fail with `status`. */
  failNext(count: number, opts: { status: 500 | 429 | 502; route?: RegExp; retryAfterMs?: number }): void {
    this.router.failNext(count, {
      status: opts.status,
      retryAfterMs: opts.retryAfterMs ?? 100,
      ...(opts.route !== undefined && { route: opts.route }),
    });
  }

  /**
   * Closes every gateway connection so the client must reconnect: with a close frame of `code` (default 4000),
   * or, for 1006, by cutting the TCP connection. Its RESUME gets op 9 `false`, then it identifies again.
   */
  dropConnections(code = 4000): void {
    this.gateway.dropConnections(code);
  }

  /**
   * The gateway goes silent: it stops reading every connection (open ones and new ones) while TCP stays up, so no
   * heartbeat is acknowledged and a client's close frame is never answered (a discord.js `destroy()` then waits
   * for its socket's own close timeout, 30 s). `releaseGateway()` reads again.
   */
  holdGateway(): void {
    this.gateway.hold(true);
  }

  releaseGateway(): void {
    this.gateway.hold(false);
  }

  // ---- waiting --------------------------------------------------------------------------------------------

  /** Resolves with the first truthy value of `check`, polled every 10 ms; rejects naming `what` after the cap. */
  async waitFor<T>(
    check: () => T | undefined | null | false,
    opts: { timeoutMs?: number; what?: string } = {},
  ): Promise<T> {
    const timeoutMs = opts.timeoutMs ?? 10_000;
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const value = check();
      if (value) return value;
      if (Date.now() >= deadline)
        throw new Error(
          `emulator: timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'a condition'}`,
        );
      await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    }
  }

  /** The first bot message in a channel that satisfies `predicate` (current state, edits applied). */
  waitForBotMessage(
    channelId: string,
    predicate: (m: APIMessage) => boolean = () => true,
    opts: { timeoutMs?: number; what?: string } = {},
  ): Promise<APIMessage> {
    return this.waitFor(
      () => this.channelMessages(channelId).find((m) => m.author.id === this.botUser.id && predicate(m)),
      {
        what: opts.what ?? `a bot message in channel ${channelId}`,
        ...(opts.timeoutMs !== undefined && { timeoutMs: opts.timeoutMs }),
      },
    );
  }

  // ---- internals ------------------------------------------------------------------------------------------

  private dispatch(t: string, d: unknown): void {
    this.events.emit('dispatch', { t, d });
    this.gateway.dispatch(t, d);
  }

  private requireThread(threadId: string) {
    const thread = this.state.thread(threadId);
    if (!thread) throw new Error(`emulator: no thread ${threadId}`);
    return thread;
  }
}
