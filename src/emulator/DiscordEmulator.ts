import { EventEmitter } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type APIChannel,
  type APIEmbed,
  type APIMessage,
  type APIUser,
  GatewayIntentBits,
  GatewayOpcodes,
} from 'discord-api-types/v10';
import { type WebSocket, WebSocketServer } from 'ws';
import { type Limit, RateLimiter } from './RateLimiter.js';
import { snowflake } from './snowflake.js';

export interface EmulatorOptions {
  /** The only token IDENTIFY and REST accept. Default 'test-token'. */
  readonly botToken?: string;
  /** Privileged intents granted; IDENTIFY with another privileged intent is closed with 4014. Default: all. */
  readonly intentsAllowed?: number;
  /** Message POSTs per channel; `false` disables. Default 5 per 5000 ms, like Discord. */
  readonly channelRateLimit?: Limit | false;
  /** Requests per window across all routes. Default 50 per 1000 ms. */
  readonly globalRateLimit?: Limit;
  /** First interaction response deadline, ms. Default 3000. */
  readonly interactionDeadlineMs?: number;
  readonly heartbeatIntervalMs?: number;
}

export interface RequestLogEntry {
  readonly at: number;
  readonly method: string;
  /** The route pattern, e.g. `POST /channels/:id/messages`. */
  readonly route: string;
  readonly path: string;
  readonly status: number;
  readonly body?: unknown;
  readonly response?: unknown;
}

export interface InteractionHandle {
  readonly id: string;
  readonly token: string;
  /** The first response the bot gave (callback type and data). */
  readonly initialResponse: Promise<{ type: number; data?: Record<string, unknown> }>;
  /** The original response message, once the bot replied or edited a deferred reply. */
  original(): APIMessage | undefined;
  followups(): APIMessage[];
}

interface InteractionState {
  readonly id: string;
  readonly token: string;
  readonly channelId: string;
  readonly createdAt: number;
  readonly messageId: string | undefined;
  responded: boolean;
  original: APIMessage | undefined;
  readonly followups: APIMessage[];
  resolve: (r: { type: number; data?: Record<string, unknown> }) => void;
}

interface Thread extends Record<string, unknown> {
  id: string;
  type: number;
  guild_id: string;
  parent_id: string;
  owner_id: string;
  name: string;
  thread_metadata: {
    archived: boolean;
    auto_archive_duration: number;
    archive_timestamp: string;
    locked: boolean;
  };
}

interface Client {
  readonly socket: WebSocket;
  identified: boolean;
  intents: number;
  seq: number;
}

const PRIVILEGED =
  GatewayIntentBits.GuildMembers | GatewayIntentBits.GuildPresences | GatewayIntentBits.MessageContent;
const ALL_PERMISSIONS = '2251799813685247';

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message));
  }
}

const invalidForm = (field: string, code: string, message: string) =>
  new HttpError(400, {
    code: 50035,
    message: 'Invalid Form Body',
    errors: { [field]: { _errors: [{ code, message }] } },
  });

/**
 * A small local Discord: REST under /api/v10 and a JSON gateway on 127.0.0.1, enough for discord.js 14 to log
 * in, receive messages, threads and interactions, and reply. It enforces the limits a bot must respect
 * (shared/discord.md) and keeps a request log and a driver API for tests and the demo.
 */
export class DiscordEmulator {
  readonly events = new EventEmitter();
  readonly requestLog: RequestLogEntry[] = [];
  readonly botToken: string;
  readonly applicationId = snowflake();
  readonly guildId = snowflake();
  readonly botUser: APIUser;
  readonly defaultChannelId: string;
  /** Times a bot post reopened an archived thread (a bot must never do this). */
  unarchivedByBotPost = 0;
  identifyCount = 0;

  private readonly opts: Required<Omit<EmulatorOptions, 'channelRateLimit'>> & {
    channelRateLimit: Limit | false;
  };
  private readonly server: Server;
  private readonly wss: WebSocketServer;
  private readonly clients = new Set<Client>();
  private readonly limiter = new RateLimiter();
  private readonly users = new Map<string, APIUser>();
  private readonly memberRoles = new Map<string, string[]>();
  private readonly roles = new Map<string, { id: string; name: string }>();
  private readonly channels = new Map<string, Record<string, unknown>>();
  private readonly deleted = new Set<string>();
  private readonly messages = new Map<string, APIMessage[]>();
  private readonly reactionState = new Map<string, Set<string>>();
  private readonly interactions = new Map<string, InteractionState>();
  private readonly commands = new Map<string, unknown[]>();
  private readonly faults: { count: number; status: number; route?: RegExp; retryAfterMs: number }[] = [];
  private sessionCounter = 0;
  private _port = 0;
  private stopped: Promise<void> | undefined;

  constructor(options: EmulatorOptions = {}) {
    this.opts = {
      botToken: options.botToken ?? 'test-token',
      intentsAllowed: options.intentsAllowed ?? PRIVILEGED,
      channelRateLimit: options.channelRateLimit ?? { limit: 5, windowMs: 5000 },
      globalRateLimit: options.globalRateLimit ?? { limit: 50, windowMs: 1000 },
      interactionDeadlineMs: options.interactionDeadlineMs ?? 3000,
      heartbeatIntervalMs: options.heartbeatIntervalMs ?? 41_250,
    };
    this.botToken = this.opts.botToken;
    this.botUser = {
      id: snowflake(),
      username: 'threadwarden',
      discriminator: '0',
      global_name: null,
      avatar: null,
      bot: true,
    };
    this.users.set(this.botUser.id, this.botUser);
    this.memberRoles.set(this.botUser.id, []);
    this.roles.set(this.guildId, { id: this.guildId, name: '@everyone' });
    this.defaultChannelId = this.createTextChannel('general');
    this.server = createServer((req, res) => void this.onHttp(req, res));
    this.wss = new WebSocketServer({ noServer: true });
    this.server.on('upgrade', (req, socket, head) => {
      this.wss.handleUpgrade(req, socket, head, (ws) => this.onSocket(ws));
    });
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this._port = (this.server.address() as AddressInfo).port;
  }

  get port(): number {
    return this._port;
  }

  get apiBase(): string {
    return `http://127.0.0.1:${this._port}/api`;
  }

  get connectedClients(): number {
    return [...this.clients].filter((c) => c.identified).length;
  }

  // ---- driver API ---------------------------------------------------------------------------------------

  createUser(name: string, opts: { roles?: string[]; bot?: boolean } = {}): APIUser {
    const user: APIUser = {
      id: snowflake(),
      username: name,
      discriminator: '0',
      global_name: name,
      avatar: null,
    };
    if (opts.bot) user.bot = true;
    this.users.set(user.id, user);
    this.memberRoles.set(user.id, opts.roles ?? []);
    return user;
  }

  createRole(name: string): string {
    const id = snowflake();
    this.roles.set(id, { id, name });
    return id;
  }

  createTextChannel(name: string): string {
    const id = snowflake();
    this.channels.set(id, {
      id,
      type: 0,
      guild_id: this.guildId,
      name,
      position: this.channels.size,
      permission_overwrites: [],
      parent_id: null,
      nsfw: false,
      topic: null,
      last_message_id: null,
      rate_limit_per_user: 0,
    });
    this.messages.set(id, []);
    return id;
  }

  /** A thread someone else started (owner is a user). */
  createThread(parentId: string, name: string, ownerId: string): string {
    const thread = this.makeThread(snowflake(), parentId, name, ownerId);
    this.dispatch('THREAD_CREATE', { ...thread, newly_created: true });
    return thread.id;
  }

  /** A user posts; dispatches MESSAGE_CREATE. Posting into an archived thread reopens it, as on Discord. */
  userSays(
    channelId: string,
    user: APIUser,
    content: string,
    opts: { mentionBot?: boolean } = {},
  ): APIMessage {
    const thread = this.threadOf(channelId);
    if (thread?.thread_metadata.archived) this.setArchived(thread, false);
    const text = opts.mentionBot ? `<@${this.botUser.id}> ${content}` : content;
    const message = this.storeMessage(
      channelId,
      user,
      { content: text },
      opts.mentionBot ? [this.botUser] : [],
    );
    this.dispatch('MESSAGE_CREATE', this.withMember(message, user), (c) => c.intents);
    return message;
  }

  archiveThread(threadId: string, opts: { locked?: boolean } = {}): void {
    const thread = this.threadOf(threadId);
    if (!thread) throw new Error(`no thread ${threadId}`);
    if (opts.locked) thread.thread_metadata.locked = true;
    this.setArchived(thread, true);
  }

  unarchiveThread(threadId: string): void {
    const thread = this.threadOf(threadId);
    if (!thread) throw new Error(`no thread ${threadId}`);
    this.setArchived(thread, false);
  }

  deleteThread(threadId: string): void {
    const thread = this.threadOf(threadId);
    if (!thread) throw new Error(`no thread ${threadId}`);
    this.channels.delete(threadId);
    this.deleted.add(threadId);
    this.dispatch('THREAD_DELETE', {
      id: threadId,
      guild_id: this.guildId,
      parent_id: thread.parent_id,
      type: 11,
    });
  }

  /** Sends any gateway dispatch as is (for malformed-payload tests). */
  dispatchRaw(t: string, d: unknown): void {
    this.dispatch(t, d);
  }

  runCommand(channelId: string, user: APIUser, name: string, options: unknown[] = []): InteractionHandle {
    return this.interact(channelId, user, 2, { id: snowflake(), name, type: 1, options }, undefined);
  }

  pressButton(channelId: string, messageId: string, customId: string, user: APIUser): InteractionHandle {
    const message = this.findMessage(channelId, messageId);
    if (!message) throw new Error(`no message ${messageId} in ${channelId}`);
    return this.interact(channelId, user, 3, { custom_id: customId, component_type: 2 }, message);
  }

  channelMessages(channelId: string): APIMessage[] {
    return [...(this.messages.get(channelId) ?? [])];
  }

  threads(): APIChannel[] {
    return [...this.channels.values()].filter((c) => c.type === 11) as unknown as APIChannel[];
  }

  thread(threadId: string): APIChannel | undefined {
    return this.threadOf(threadId) as unknown as APIChannel | undefined;
  }

  /** The bot's current reactions on a message. */
  reactions(channelId: string, messageId: string): string[] {
    return [...(this.reactionState.get(`${channelId}/${messageId}`) ?? [])];
  }

  registeredCommands(guildId?: string): unknown[] {
    return this.commands.get(guildId ?? 'global') ?? [];
  }

  errors(): RequestLogEntry[] {
    return this.requestLog.filter((e) => e.status >= 400);
  }

  rateLimited(): RequestLogEntry[] {
    return this.requestLog.filter((e) => e.status === 429);
  }

  /** The next `count` REST requests (matching `route` if given) fail with `status`. */
  failNext(count: number, opts: { status: 500 | 502 | 429; route?: RegExp; retryAfterMs?: number }): void {
    this.faults.push({
      count,
      status: opts.status,
      retryAfterMs: opts.retryAfterMs ?? 100,
      ...(opts.route !== undefined && { route: opts.route }),
    });
  }

  /** Closes every gateway connection; the client must reconnect. */
  dropConnections(code = 4000): void {
    for (const c of this.clients) c.socket.close(code, 'emulator dropped the connection');
  }

  async waitFor<T>(
    check: () => T | undefined | null | false,
    opts: { timeoutMs?: number; what?: string } = {},
  ): Promise<T> {
    const deadline = Date.now() + (opts.timeoutMs ?? 10_000);
    for (;;) {
      const v = check();
      if (v) return v;
      if (Date.now() > deadline)
        throw new Error(`emulator: timed out waiting for ${opts.what ?? 'a condition'}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  }

  waitForBotMessage(
    channelId: string,
    predicate: (m: APIMessage) => boolean = () => true,
    opts: { timeoutMs?: number } = {},
  ): Promise<APIMessage> {
    return this.waitFor(
      () => this.channelMessages(channelId).find((m) => m.author.id === this.botUser.id && predicate(m)),
      { ...opts, what: `a bot message in ${channelId}` },
    );
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      for (const c of this.clients) c.socket.terminate();
      this.clients.clear();
      await new Promise<void>((resolve) => this.wss.close(() => resolve()));
      this.server.closeAllConnections();
      await new Promise<void>((resolve) => this.server.close(() => resolve()));
    })();
    return this.stopped;
  }

  // ---- gateway ------------------------------------------------------------------------------------------

  private onSocket(socket: WebSocket): void {
    const client: Client = { socket, identified: false, intents: 0, seq: 0 };
    this.clients.add(client);
    socket.on('close', () => this.clients.delete(client));
    socket.on('error', () => this.clients.delete(client));
    socket.on('message', (raw) => {
      let packet: { op?: number; d?: Record<string, unknown> };
      try {
        packet = JSON.parse(String(raw)) as typeof packet;
      } catch {
        socket.close(4002, 'Error while decoding payload.');
        return;
      }
      this.onGatewayPacket(client, packet);
    });
    socket.send(
      JSON.stringify({ op: GatewayOpcodes.Hello, d: { heartbeat_interval: this.opts.heartbeatIntervalMs } }),
    );
  }

  private onGatewayPacket(client: Client, packet: { op?: number; d?: Record<string, unknown> }): void {
    switch (packet.op) {
      case GatewayOpcodes.Heartbeat:
        client.socket.send(JSON.stringify({ op: GatewayOpcodes.HeartbeatAck }));
        return;
      case GatewayOpcodes.Identify: {
        const d = packet.d ?? {};
        if (d.token !== this.botToken) {
          client.socket.close(4004, 'Authentication failed.');
          return;
        }
        const intents = Number(d.intents ?? 0);
        if ((intents & PRIVILEGED & ~this.opts.intentsAllowed) !== 0) {
          client.socket.close(4014, 'Disallowed intent(s).');
          return;
        }
        client.identified = true;
        client.intents = intents;
        this.identifyCount++;
        const url = `ws://127.0.0.1:${this._port}`;
        this.send(client, 'READY', {
          v: 10,
          user: this.botUser,
          guilds: [{ id: this.guildId, unavailable: true }],
          session_id: `session-${++this.sessionCounter}`,
          resume_gateway_url: url,
          shard: [0, 1],
          application: { id: this.applicationId, flags: 0 },
        });
        this.send(client, 'GUILD_CREATE', this.guildPayload());
        return;
      }
      case GatewayOpcodes.Resume:
        client.socket.send(JSON.stringify({ op: GatewayOpcodes.InvalidSession, d: false }));
        return;
      default:
        return;
    }
  }

  private send(client: Client, t: string, d: unknown): void {
    client.seq++;
    client.socket.send(JSON.stringify({ op: GatewayOpcodes.Dispatch, t, s: client.seq, d }));
  }

  /** Sends a dispatch to every identified client; MESSAGE_CREATE content is emptied without MESSAGE_CONTENT. */
  private dispatch(t: string, d: unknown, intentsOf?: (c: Client) => number): void {
    this.events.emit('dispatch', { t, d });
    for (const c of this.clients) {
      if (!c.identified || c.socket.readyState !== c.socket.OPEN) continue;
      let payload = d;
      if (intentsOf && (intentsOf(c) & GatewayIntentBits.MessageContent) === 0) {
        const m = d as APIMessage;
        if (!m.mentions?.some((u) => u.id === this.botUser.id)) payload = { ...m, content: '' };
      }
      this.send(c, t, payload);
    }
  }

  private guildPayload(): Record<string, unknown> {
    const now = new Date().toISOString();
    return {
      id: this.guildId,
      name: 'Emulated guild',
      icon: null,
      splash: null,
      discovery_splash: null,
      owner_id: this.botUser.id,
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: 0,
      default_message_notifications: 0,
      explicit_content_filter: 0,
      roles: [...this.roles.values()].map((r, i) => ({
        id: r.id,
        name: r.name,
        color: 0,
        hoist: false,
        icon: null,
        unicode_emoji: null,
        position: i,
        permissions: r.id === this.guildId ? '1071698660929' : ALL_PERMISSIONS,
        managed: false,
        mentionable: false,
        flags: 0,
      })),
      emojis: [],
      features: [],
      mfa_level: 0,
      application_id: null,
      system_channel_id: null,
      system_channel_flags: 0,
      rules_channel_id: null,
      vanity_url_code: null,
      description: null,
      banner: null,
      premium_tier: 0,
      preferred_locale: 'en-US',
      public_updates_channel_id: null,
      nsfw_level: 0,
      premium_progress_bar_enabled: false,
      stickers: [],
      joined_at: now,
      large: false,
      unavailable: false,
      member_count: this.users.size,
      members: [{ user: this.botUser, roles: [], joined_at: now, deaf: false, mute: false, flags: 0 }],
      channels: [...this.channels.values()].filter((c) => c.type !== 11),
      threads: this.threads().filter((t) => !(t as unknown as Thread).thread_metadata.archived),
      presences: [],
      voice_states: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
    };
  }

  // ---- state helpers -----------------------------------------------------------------------------------

  private threadOf(id: string): Thread | undefined {
    const c = this.channels.get(id);
    return c && c.type === 11 ? (c as Thread) : undefined;
  }

  private makeThread(id: string, parentId: string, name: string, ownerId: string): Thread {
    const now = new Date().toISOString();
    const thread: Thread = {
      id,
      type: 11,
      guild_id: this.guildId,
      parent_id: parentId,
      owner_id: ownerId,
      name,
      last_message_id: null,
      message_count: 0,
      member_count: 1,
      rate_limit_per_user: 0,
      flags: 0,
      total_message_sent: 0,
      thread_metadata: {
        archived: false,
        auto_archive_duration: 1440,
        archive_timestamp: now,
        locked: false,
      },
    };
    (thread.thread_metadata as Record<string, unknown>).create_timestamp = now;
    this.channels.set(id, thread);
    this.messages.set(id, []);
    return thread;
  }

  private setArchived(thread: Thread, archived: boolean): void {
    thread.thread_metadata.archived = archived;
    thread.thread_metadata.archive_timestamp = new Date().toISOString();
    this.dispatch('THREAD_UPDATE', { ...thread, thread_metadata: { ...thread.thread_metadata } });
  }

  private storeMessage(
    channelId: string,
    author: APIUser,
    data: {
      content?: string | undefined;
      embeds?: APIEmbed[] | undefined;
      components?: unknown[] | undefined;
    },
    mentions: APIUser[],
  ): APIMessage {
    const message = {
      id: snowflake(),
      channel_id: channelId,
      author,
      content: data.content ?? '',
      timestamp: new Date().toISOString(),
      edited_timestamp: null,
      tts: false,
      mention_everyone: false,
      mentions,
      mention_roles: [],
      attachments: [],
      embeds: data.embeds ?? [],
      pinned: false,
      type: 0,
      flags: 0,
      components: data.components ?? [],
    } as unknown as APIMessage;
    const list = this.messages.get(channelId);
    if (list) list.push(message);
    else this.messages.set(channelId, [message]);
    this.events.emit('messageCreate', message);
    return message;
  }

  private withMember(message: APIMessage, user: APIUser): Record<string, unknown> {
    return {
      ...message,
      guild_id: this.guildId,
      channel_type: this.threadOf(message.channel_id) ? 11 : 0,
      member: {
        roles: this.memberRoles.get(user.id) ?? [],
        joined_at: new Date().toISOString(),
        deaf: false,
        mute: false,
        flags: 0,
      },
    };
  }

  private findMessage(channelId: string, messageId: string): APIMessage | undefined {
    return this.messages.get(channelId)?.find((m) => m.id === messageId);
  }

  private interact(
    channelId: string,
    user: APIUser,
    type: 2 | 3,
    data: Record<string, unknown>,
    message: APIMessage | undefined,
  ): InteractionHandle {
    const id = snowflake();
    const token = `itoken-${id}`;
    let resolve!: InteractionState['resolve'];
    const initialResponse = new Promise<{ type: number; data?: Record<string, unknown> }>((r) => {
      resolve = r;
    });
    const state: InteractionState = {
      id,
      token,
      channelId,
      createdAt: Date.now(),
      messageId: message?.id,
      responded: false,
      original: undefined,
      followups: [],
      resolve,
    };
    this.interactions.set(token, state);
    const channel = this.channels.get(channelId);
    this.dispatch('INTERACTION_CREATE', {
      id,
      application_id: this.applicationId,
      type,
      token,
      version: 1,
      data,
      guild_id: this.guildId,
      channel,
      channel_id: channelId,
      member: {
        user,
        roles: this.memberRoles.get(user.id) ?? [],
        permissions: ALL_PERMISSIONS,
        joined_at: new Date().toISOString(),
        deaf: false,
        mute: false,
        flags: 0,
      },
      ...(message && { message }),
      app_permissions: ALL_PERMISSIONS,
      locale: 'en-US',
      guild_locale: 'en-US',
      entitlements: [],
      authorizing_integration_owners: { '0': this.guildId },
      context: 0,
    });
    return {
      id,
      token,
      initialResponse,
      original: () => state.original,
      followups: () => [...state.followups],
    };
  }

  // ---- REST ---------------------------------------------------------------------------------------------

  private async onHttp(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const raw = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    // discord.js encodes `@` (`%40original`, `%40me`); Discord accepts both spellings.
    const path = url.pathname.replace(/^\/api(\/v\d+)?/, '').replaceAll('%40', '@');
    const method = req.method ?? 'GET';
    let body: unknown;
    try {
      body = raw ? JSON.parse(raw) : undefined;
    } catch {
      body = raw;
    }
    let status = 200;
    let response: unknown;
    let route = `${method} ${path}`;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    try {
      const matched = this.match(method, path);
      route = matched.route;
      const fault = this.takeFault(route);
      if (fault) {
        if (fault.status === 429) {
          headers['retry-after'] = String(Math.ceil(fault.retryAfterMs / 1000));
          headers['x-ratelimit-scope'] = 'user';
          throw new HttpError(429, {
            message: 'You are being rate limited.',
            retry_after: fault.retryAfterMs / 1000,
            global: false,
          });
        }
        throw new HttpError(fault.status, { message: 'Internal Server Error', code: 0 });
      }
      if (matched.auth && req.headers.authorization !== `Bot ${this.botToken}`) {
        throw new HttpError(401, { message: '401: Unauthorized', code: 0 });
      }
      this.applyRateLimits(route, matched.params, headers);
      const result = matched.handler(body, url.searchParams);
      if (result === undefined) status = 204;
      else response = result;
    } catch (err) {
      if (err instanceof HttpError) {
        status = err.status;
        response = err.body;
      } else {
        status = 500;
        response = { message: (err as Error).message, code: 0 };
      }
    }
    const entry: RequestLogEntry = { at: Date.now(), method, route, path, status, body, response };
    this.requestLog.push(entry);
    this.events.emit('request', entry);
    // A 204 has no body and so no content type (discord.js parses any JSON-typed body).
    if (status === 204) delete headers['content-type'];
    res.writeHead(status, headers);
    res.end(status === 204 ? undefined : JSON.stringify(response ?? {}));
  }

  private takeFault(route: string): { status: number; retryAfterMs: number } | undefined {
    const f = this.faults.find((x) => x.count > 0 && (!x.route || x.route.test(route)));
    if (!f) return undefined;
    f.count--;
    if (f.count === 0) this.faults.splice(this.faults.indexOf(f), 1);
    return f;
  }

  private applyRateLimits(route: string, params: string[], headers: Record<string, string>): void {
    const global = this.limiter.take('global', this.opts.globalRateLimit);
    if (!global.allowed) {
      headers['retry-after'] = String(Math.ceil(global.resetAfter));
      headers['x-ratelimit-global'] = 'true';
      headers['x-ratelimit-scope'] = 'global';
      throw new HttpError(429, {
        message: 'You are being rate limited.',
        retry_after: global.resetAfter,
        global: true,
      });
    }
    const limit = this.opts.channelRateLimit;
    const isPost = route === 'POST /channels/:id/messages';
    const bucketLimit: Limit = isPost && limit ? limit : { limit: 50, windowMs: 1000 };
    const bucket = isPost ? 'message-post' : route.replace(/\W+/g, '-');
    const d = this.limiter.take(`${bucket}:${params[0] ?? ''}`, bucketLimit);
    headers['x-ratelimit-limit'] = String(d.limit);
    headers['x-ratelimit-remaining'] = String(d.remaining);
    headers['x-ratelimit-reset'] = d.reset.toFixed(3);
    headers['x-ratelimit-reset-after'] = d.resetAfter.toFixed(3);
    headers['x-ratelimit-bucket'] = bucket;
    if (!d.allowed) {
      headers['retry-after'] = String(Math.ceil(d.resetAfter));
      headers['x-ratelimit-scope'] = 'user';
      throw new HttpError(429, {
        message: 'You are being rate limited.',
        retry_after: d.resetAfter,
        global: false,
      });
    }
  }

  private match(
    method: string,
    path: string,
  ): {
    route: string;
    params: string[];
    auth: boolean;
    handler: (body: unknown, query: URLSearchParams) => unknown;
  } {
    const routes: [string, RegExp, boolean, (p: string[], body: unknown, q: URLSearchParams) => unknown][] = [
      ['GET /gateway/bot', /^\/gateway\/bot$/, true, () => this.gatewayBot()],
      ['GET /gateway', /^\/gateway$/, false, () => ({ url: `ws://127.0.0.1:${this._port}` })],
      ['GET /users/@me', /^\/users\/@me$/, true, () => this.botUser],
      ['GET /applications/@me', /^\/applications\/@me$/, true, () => this.application()],
      ['GET /guilds/:id', /^\/guilds\/(\d+)$/, true, () => this.guildPayload()],
      ['GET /guilds/:id/members/:user', /^\/guilds\/(\d+)\/members\/(\d+)$/, true, (p) => this.member(p[1]!)],
      ['GET /channels/:id', /^\/channels\/(\d+)$/, true, (p) => this.channel(p[0]!)],
      ['PATCH /channels/:id', /^\/channels\/(\d+)$/, true, (p, b) => this.patchChannel(p[0]!, b)],
      [
        'GET /channels/:id/messages/:msg',
        /^\/channels\/(\d+)\/messages\/(\d+)$/,
        true,
        (p) => this.getMessage(p[0]!, p[1]!),
      ],
      [
        'POST /channels/:id/messages',
        /^\/channels\/(\d+)\/messages$/,
        true,
        (p, b) => this.postMessage(p[0]!, b),
      ],
      [
        'PATCH /channels/:id/messages/:msg',
        /^\/channels\/(\d+)\/messages\/(\d+)$/,
        true,
        (p, b) => this.editMessage(p[0]!, p[1]!, b),
      ],
      ['POST /channels/:id/typing', /^\/channels\/(\d+)\/typing$/, true, (p) => this.typing(p[0]!)],
      [
        'POST /channels/:id/messages/:msg/threads',
        /^\/channels\/(\d+)\/messages\/(\d+)\/threads$/,
        true,
        (p, b) => this.startThread(p[0]!, p[1]!, b),
      ],
      [
        'PUT /channels/:id/messages/:msg/reactions/:emoji/@me',
        /^\/channels\/(\d+)\/messages\/(\d+)\/reactions\/([^/]+)\/@me$/,
        true,
        (p) => this.react(p[0]!, p[1]!, p[2]!, true),
      ],
      [
        'DELETE /channels/:id/messages/:msg/reactions/:emoji/@me',
        /^\/channels\/(\d+)\/messages\/(\d+)\/reactions\/([^/]+)\/@me$/,
        true,
        (p) => this.react(p[0]!, p[1]!, p[2]!, false),
      ],
      [
        'PUT /applications/:app/commands',
        /^\/applications\/(\d+)\/commands$/,
        true,
        (_p, b) => this.putCommands('global', b),
      ],
      [
        'PUT /applications/:app/guilds/:guild/commands',
        /^\/applications\/(\d+)\/guilds\/(\d+)\/commands$/,
        true,
        (p, b) => this.putCommands(p[1]!, b),
      ],
      [
        'POST /interactions/:id/:token/callback',
        /^\/interactions\/(\d+)\/([^/]+)\/callback$/,
        false,
        (p, b, q) => this.callback(p[1]!, b, q),
      ],
      [
        'GET /webhooks/:app/:token/messages/@original',
        /^\/webhooks\/(\d+)\/([^/]+)\/messages\/@original$/,
        false,
        (p) => this.original(p[1]!),
      ],
      [
        'PATCH /webhooks/:app/:token/messages/@original',
        /^\/webhooks\/(\d+)\/([^/]+)\/messages\/@original$/,
        false,
        (p, b) => this.editOriginal(p[1]!, b),
      ],
      [
        'POST /webhooks/:app/:token',
        /^\/webhooks\/(\d+)\/([^/]+)$/,
        false,
        (p, b) => this.followup(p[1]!, b),
      ],
    ];
    for (const [route, re, auth, fn] of routes) {
      if (!route.startsWith(`${method} `)) continue;
      const m = re.exec(path);
      if (m) {
        const params = m.slice(1).map((s) => decodeURIComponent(s));
        return { route, params, auth, handler: (body, q) => fn(params, body, q) };
      }
    }
    throw new HttpError(404, { message: '404: Not Found', code: 0 });
  }

  private gatewayBot(): unknown {
    return {
      url: `ws://127.0.0.1:${this._port}`,
      shards: 1,
      session_start_limit: { total: 1000, remaining: 999, reset_after: 14_400_000, max_concurrency: 1 },
    };
  }

  private application(): unknown {
    return {
      id: this.applicationId,
      name: 'threadwarden',
      icon: null,
      description: '',
      bot_public: true,
      bot_require_code_grant: false,
      verify_key: '0'.repeat(64),
      flags: 0,
      owner: this.botUser,
      team: null,
    };
  }

  private member(userId: string): unknown {
    const user = this.users.get(userId);
    if (!user) throw new HttpError(404, { message: 'Unknown Member', code: 10007 });
    return {
      user,
      roles: this.memberRoles.get(userId) ?? [],
      joined_at: new Date().toISOString(),
      deaf: false,
      mute: false,
      flags: 0,
    };
  }

  private live(channelId: string): Record<string, unknown> {
    const c = this.channels.get(channelId);
    if (!c) throw new HttpError(404, { message: 'Unknown Channel', code: 10003 });
    return c;
  }

  private channel(channelId: string): unknown {
    return this.live(channelId);
  }

  private patchChannel(channelId: string, body: unknown): unknown {
    const c = this.live(channelId);
    const b = (body ?? {}) as { archived?: boolean; locked?: boolean; name?: string };
    const thread = this.threadOf(channelId);
    if (b.name !== undefined) c.name = b.name;
    if (thread) {
      if (b.locked !== undefined) thread.thread_metadata.locked = b.locked;
      if (b.archived !== undefined) this.setArchived(thread, b.archived);
      else this.dispatch('THREAD_UPDATE', { ...thread });
    }
    return c;
  }

  private getMessage(channelId: string, messageId: string): unknown {
    this.live(channelId);
    const m = this.findMessage(channelId, messageId);
    if (!m) throw new HttpError(404, { message: 'Unknown Message', code: 10008 });
    return m;
  }

  private checkContent(
    b: { content?: unknown; embeds?: unknown; components?: unknown },
    requireSome: boolean,
  ): void {
    const content = typeof b.content === 'string' ? b.content : '';
    if (content.length > 2000) {
      throw invalidForm('content', 'BASE_TYPE_MAX_LENGTH', 'Must be 2000 or fewer in length.');
    }
    const embeds = Array.isArray(b.embeds) ? (b.embeds as APIEmbed[]) : [];
    if (embeds.length > 10)
      throw invalidForm('embeds', 'BASE_TYPE_MAX_LENGTH', 'Must be 10 or fewer in length.');
    let total = 0;
    for (const e of embeds) {
      const check = (value: string | undefined, max: number, field: string) => {
        if (value === undefined) return;
        total += value.length;
        if (value.length > max)
          throw invalidForm(`embeds.${field}`, 'BASE_TYPE_MAX_LENGTH', `Must be ${max} or fewer in length.`);
      };
      check(e.title, 256, 'title');
      check(e.description, 4096, 'description');
      check(e.footer?.text, 2048, 'footer.text');
      check(e.author?.name, 256, 'author.name');
      if ((e.fields?.length ?? 0) > 25)
        throw invalidForm('embeds.fields', 'BASE_TYPE_MAX_LENGTH', 'Must be 25 or fewer in length.');
      for (const f of e.fields ?? []) {
        check(f.name, 256, 'fields.name');
        check(f.value, 1024, 'fields.value');
      }
    }
    if (total > 6000)
      throw invalidForm('embeds', 'BASE_TYPE_MAX_LENGTH', 'Embed size exceeds maximum size of 6000');
    const components = Array.isArray(b.components) ? b.components : [];
    if (requireSome && content === '' && embeds.length === 0 && components.length === 0) {
      throw new HttpError(400, { message: 'Cannot send an empty message', code: 50006 });
    }
  }

  private postMessage(channelId: string, body: unknown): unknown {
    this.live(channelId);
    const b = (body ?? {}) as { content?: string; embeds?: APIEmbed[]; components?: unknown[] };
    this.checkContent(b, true);
    const thread = this.threadOf(channelId);
    if (thread?.thread_metadata.archived) {
      if (thread.thread_metadata.locked)
        throw new HttpError(400, { message: 'Thread is archived', code: 50083 });
      this.unarchivedByBotPost++;
      this.setArchived(thread, false);
    }
    const message = this.storeMessage(channelId, this.botUser, b, []);
    this.dispatch('MESSAGE_CREATE', this.withMember(message, this.botUser), (c) => c.intents);
    return message;
  }

  private editMessage(channelId: string, messageId: string, body: unknown): unknown {
    this.live(channelId);
    if (this.threadOf(channelId)?.thread_metadata.archived)
      throw new HttpError(400, { message: 'Thread is archived', code: 50083 });
    const m = this.findMessage(channelId, messageId);
    if (!m) throw new HttpError(404, { message: 'Unknown Message', code: 10008 });
    if (m.author.id !== this.botUser.id)
      throw new HttpError(403, { message: 'Cannot edit a message authored by another user', code: 50005 });
    const b = (body ?? {}) as { content?: string; embeds?: APIEmbed[]; components?: unknown[] };
    this.checkContent(b, false);
    this.applyEdit(m, b);
    this.dispatch('MESSAGE_UPDATE', { ...m, guild_id: this.guildId });
    this.events.emit('messageUpdate', m);
    return m;
  }

  private applyEdit(
    m: APIMessage,
    b: { content?: string; embeds?: APIEmbed[]; components?: unknown[] },
  ): void {
    const mutable = m as unknown as Record<string, unknown>;
    if (b.content !== undefined) mutable.content = b.content;
    if (b.embeds !== undefined) mutable.embeds = b.embeds;
    if (b.components !== undefined) mutable.components = b.components;
    mutable.edited_timestamp = new Date().toISOString();
  }

  private typing(channelId: string): undefined {
    this.live(channelId);
    return undefined;
  }

  private startThread(channelId: string, messageId: string, body: unknown): unknown {
    this.live(channelId);
    const m = this.findMessage(channelId, messageId);
    if (!m) throw new HttpError(404, { message: 'Unknown Message', code: 10008 });
    if (this.channels.has(messageId))
      throw new HttpError(400, {
        message: 'A thread has already been created for this message',
        code: 160004,
      });
    const b = (body ?? {}) as { name?: string };
    const name = (b.name ?? '').trim();
    if (name.length === 0 || name.length > 100)
      throw invalidForm('name', 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.');
    const thread = this.makeThread(messageId, channelId, name, this.botUser.id);
    this.dispatch('THREAD_CREATE', { ...thread, newly_created: true });
    return thread;
  }

  private react(channelId: string, messageId: string, emoji: string, add: boolean): undefined {
    this.live(channelId);
    if (this.threadOf(channelId)?.thread_metadata.archived)
      throw new HttpError(400, { message: 'Thread is archived', code: 50083 });
    if (!this.findMessage(channelId, messageId))
      throw new HttpError(404, { message: 'Unknown Message', code: 10008 });
    const key = `${channelId}/${messageId}`;
    const set = this.reactionState.get(key) ?? new Set<string>();
    if (add) set.add(emoji);
    else set.delete(emoji);
    this.reactionState.set(key, set);
    return undefined;
  }

  private putCommands(scope: string, body: unknown): unknown {
    const list = (Array.isArray(body) ? body : []).map((c: Record<string, unknown>) => ({
      id: snowflake(),
      application_id: this.applicationId,
      version: snowflake(),
      type: 1,
      default_member_permissions: null,
      options: [],
      ...(scope !== 'global' && { guild_id: scope }),
      ...c,
    }));
    this.commands.set(scope, list);
    return list;
  }

  private interaction(token: string): InteractionState {
    const state = this.interactions.get(token);
    if (!state || Date.now() - state.createdAt > 15 * 60_000) {
      throw new HttpError(404, { message: 'Unknown interaction', code: 10062 });
    }
    return state;
  }

  private callback(token: string, body: unknown, query: URLSearchParams): unknown {
    const state = this.interaction(token);
    if (Date.now() - state.createdAt > this.opts.interactionDeadlineMs && !state.responded) {
      throw new HttpError(404, { message: 'Unknown interaction', code: 10062 });
    }
    if (state.responded) {
      throw new HttpError(400, { message: 'Interaction has already been acknowledged.', code: 40060 });
    }
    const b = (body ?? {}) as { type: number; data?: Record<string, unknown> };
    if (b.type === 4 || b.type === 7) this.checkContent(b.data ?? {}, b.type === 4);
    state.responded = true;
    if (b.type === 4) {
      state.original = this.webhookMessage(state, b.data ?? {});
    } else if (b.type === 5) {
      state.original = this.webhookMessage(state, { content: '', flags: b.data?.flags });
    } else if (b.type === 7 && state.messageId) {
      const m = this.findMessage(state.channelId, state.messageId);
      if (m) {
        this.applyEdit(m, b.data ?? {});
        this.dispatch('MESSAGE_UPDATE', { ...m, guild_id: this.guildId });
      }
    }
    state.resolve(b.data === undefined ? { type: b.type } : { type: b.type, data: b.data });
    if (query.get('with_response') === 'true') {
      return {
        interaction: {
          id: state.id,
          type: 2,
          activity_instance_id: null,
          response_message_id: state.original?.id ?? null,
          response_message_loading: b.type === 5,
          response_message_ephemeral: false,
        },
        resource: { type: b.type, ...(state.original && { message: state.original }) },
      };
    }
    return undefined;
  }

  /** A message sent through the interaction webhook; ephemeral ones (flags 64) are not posted to the channel. */
  private webhookMessage(state: InteractionState, data: Record<string, unknown>): APIMessage {
    const ephemeral = (Number(data.flags ?? 0) & 64) !== 0;
    const payload = {
      content: data.content as string | undefined,
      embeds: data.embeds as APIEmbed[] | undefined,
      components: data.components as unknown[] | undefined,
    };
    if (ephemeral) {
      const m = {
        id: snowflake(),
        channel_id: state.channelId,
        author: this.botUser,
        content: payload.content ?? '',
        timestamp: new Date().toISOString(),
        edited_timestamp: null,
        tts: false,
        mention_everyone: false,
        mentions: [],
        mention_roles: [],
        attachments: [],
        embeds: payload.embeds ?? [],
        components: payload.components ?? [],
        pinned: false,
        type: 20,
        flags: 64,
        webhook_id: this.applicationId,
        application_id: this.applicationId,
      } as unknown as APIMessage;
      return m;
    }
    const m = this.storeMessage(state.channelId, this.botUser, payload, []);
    return m;
  }

  private original(token: string): unknown {
    const state = this.interaction(token);
    if (!state.original) throw new HttpError(404, { message: 'Unknown Message', code: 10008 });
    return state.original;
  }

  private editOriginal(token: string, body: unknown): unknown {
    const state = this.interaction(token);
    if (!state.original) throw new HttpError(404, { message: 'Unknown Message', code: 10008 });
    const b = (body ?? {}) as { content?: string; embeds?: APIEmbed[]; components?: unknown[] };
    this.checkContent(b, false);
    this.applyEdit(state.original, b);
    return state.original;
  }

  private followup(token: string, body: unknown): unknown {
    const state = this.interaction(token);
    const b = (body ?? {}) as Record<string, unknown>;
    this.checkContent(b, true);
    const m = this.webhookMessage(state, b);
    state.followups.push(m);
    return m;
  }
}
