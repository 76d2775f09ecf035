import type { EventEmitter } from 'node:events';
import {
  type APIAllowedMentions,
  type APIApplicationCommand,
  type APIGuild,
  type APIGuildMember,
  type APIMessage,
  type APIReaction,
  type APIRole,
  type APITextChannel,
  type APIThreadChannel,
  type APIThreadMetadata,
  type APIUser,
  type ChannelFlags,
  ChannelType,
  type GatewayGuildCreateDispatchData,
  GuildDefaultMessageNotifications,
  GuildExplicitContentFilter,
  type GuildMemberFlags,
  GuildMFALevel,
  GuildNSFWLevel,
  GuildPremiumTier,
  GuildSystemChannelFlags,
  GuildVerificationLevel,
  Locale,
  MessageType,
  type RoleFlags,
  ThreadAutoArchiveDuration,
} from 'discord-api-types/v10';
import type { EmulatorEvents } from './EmulatorEvents.js';
import { DiscordErrors } from './HttpError.js';
import type { MessagePayload } from './messageLimits.js';
import { snowflake } from './snowflake.js';

/** Every permission bit Discord has defined so far, as given to the bot and to command invokers. */
export const ALL_PERMISSIONS = '2251799813685247';
/** Discord's default permissions of @everyone in a new guild. */
const EVERYONE_PERMISSIONS = '1071698660929';

export type TextChannel = APITextChannel & { guild_id: string; position: number };

/** A thread as the emulator keeps it: the fields Discord always sends for a guild thread are required here. */
export interface ThreadChannel
  extends APIThreadChannel<ChannelType.PublicThread | ChannelType.PrivateThread> {
  guild_id: string;
  parent_id: string;
  owner_id: string;
  last_message_id: string | null;
  message_count: number;
  member_count: number;
  total_message_sent: number;
  thread_metadata: APIThreadMetadata & { create_timestamp: string };
}

export type Channel = TextChannel | ThreadChannel;

/** A message as stored: Discord's message plus the `allowed_mentions` it was sent with, kept for tests. */
export interface EmulatedMessage extends APIMessage {
  allowed_mentions?: APIAllowedMentions;
}

/** Sends a gateway dispatch to every connection that may see it. */
export type DispatchFn = (t: string, d: unknown) => void;

const THREAD_TYPES: ReadonlySet<ChannelType> = new Set([
  ChannelType.PublicThread,
  ChannelType.PrivateThread,
  ChannelType.AnnouncementThread,
]);

export const isThread = (c: Channel): c is ThreadChannel => THREAD_TYPES.has(c.type);

const USER_MENTION = /<@!?(\d{17,20})>/g;
const ROLE_MENTION = /<@&(\d{17,20})>/g;

/**
 * The emulated guild: users, roles, channels, threads, messages, reactions and commands. Every change that
 * Discord announces on the gateway is dispatched from here, so REST routes and the test driver produce the same
 * events.
 */
export class EmulatorState {
  readonly guildId = snowflake();
  readonly applicationId = snowflake();
  readonly botUser: APIUser;
  readonly users = new Map<string, APIUser>();
  readonly roles = new Map<string, APIRole>();
  readonly channels = new Map<string, Channel>();
  /** Channels that existed and were deleted: REST on them answers 10003 like on Discord. */
  readonly deleted = new Set<string>();
  readonly commands = new Map<string, APIApplicationCommand[]>();
  private readonly memberRoles = new Map<string, string[]>();
  private readonly joinedAt = new Map<string, string>();
  private readonly messages = new Map<string, EmulatedMessage[]>();
  private readonly reactionSets = new Map<string, Set<string>>();

  constructor(
    private readonly now: () => number,
    private readonly dispatch: DispatchFn,
    private readonly events: EventEmitter<EmulatorEvents>,
    botName = 'threadwarden',
  ) {
    this.botUser = {
      id: this.id(),
      username: botName,
      discriminator: '0',
      global_name: null,
      avatar: null,
      bot: true,
    };
    this.users.set(this.botUser.id, this.botUser);
    this.memberRoles.set(this.botUser.id, []);
    this.joinedAt.set(this.botUser.id, this.iso());
    this.roles.set(this.guildId, this.role(this.guildId, '@everyone', 0, EVERYONE_PERMISSIONS));
  }

  id(): string {
    return snowflake(this.now());
  }

  iso(): string {
    return new Date(this.now()).toISOString();
  }

  // ---- people ---------------------------------------------------------------------------------------------

  addUser(name: string, opts: { roles?: readonly string[]; bot?: boolean } = {}): APIUser {
    for (const r of opts.roles ?? [])
      if (!this.roles.has(r)) throw new Error(`createUser: unknown role ${r}`);
    const user: APIUser = {
      id: this.id(),
      username: name,
      discriminator: '0',
      global_name: name,
      avatar: null,
    };
    if (opts.bot) user.bot = true;
    this.users.set(user.id, user);
    this.memberRoles.set(user.id, [...(opts.roles ?? [])]);
    this.joinedAt.set(user.id, this.iso());
    this.dispatch('GUILD_MEMBER_ADD', { ...this.member(user.id), guild_id: this.guildId });
    return user;
  }

  addRole(name: string): string {
    const id = this.id();
    const role = this.role(id, name, this.roles.size, ALL_PERMISSIONS);
    this.roles.set(id, role);
    this.dispatch('GUILD_ROLE_CREATE', { guild_id: this.guildId, role: this.copy(role) });
    return id;
  }

  rolesOf(userId: string): string[] {
    return [...(this.memberRoles.get(userId) ?? [])];
  }

  /** The guild member of a user; messages carry it without `user`, REST and interactions with it. */
  member(userId: string): APIGuildMember {
    const user = this.users.get(userId);
    if (!user) throw DiscordErrors.unknownMember();
    return {
      user,
      roles: this.rolesOf(userId),
      joined_at: this.joinedAt.get(userId) ?? this.iso(),
      deaf: false,
      mute: false,
      flags: 0 as GuildMemberFlags,
    };
  }

  private role(id: string, name: string, position: number, permissions: string): APIRole {
    return {
      id,
      name,
      color: 0,
      colors: { primary_color: 0, secondary_color: null, tertiary_color: null },
      hoist: false,
      icon: null,
      unicode_emoji: null,
      position,
      permissions,
      managed: false,
      mentionable: false,
      flags: 0 as RoleFlags,
    };
  }

  // ---- channels and threads -------------------------------------------------------------------------------

  addTextChannel(name: string): string {
    const id = this.id();
    const channel: TextChannel = {
      id,
      type: ChannelType.GuildText,
      guild_id: this.guildId,
      name,
      position: [...this.channels.values()].filter((c) => !isThread(c)).length,
      permission_overwrites: [],
      parent_id: null,
      nsfw: false,
      topic: null,
      last_message_id: null,
      rate_limit_per_user: 0,
      flags: 0 as ChannelFlags,
    };
    this.channels.set(id, channel);
    this.messages.set(id, []);
    this.dispatch('CHANNEL_CREATE', this.copy(channel));
    return id;
  }

  /** A live channel or thread; a deleted or unknown one is 404 Unknown Channel (10003). */
  channel(id: string): Channel {
    const c = this.channels.get(id);
    if (!c) throw DiscordErrors.unknownChannel();
    return c;
  }

  thread(id: string): ThreadChannel | undefined {
    const c = this.channels.get(id);
    return c && isThread(c) ? c : undefined;
  }

  threads(): ThreadChannel[] {
    return [...this.channels.values()].filter(isThread);
  }

  /** Creates a thread and dispatches THREAD_CREATE with `newly_created`, as Discord does. */
  createThread(
    parentId: string,
    name: string,
    ownerId: string,
    opts: {
      id?: string;
      type?: ChannelType.PublicThread | ChannelType.PrivateThread;
      autoArchiveDuration?: ThreadAutoArchiveDuration;
    } = {},
  ): ThreadChannel {
    const parent = this.channel(parentId);
    if (isThread(parent)) throw DiscordErrors.wrongChannelType();
    const now = this.iso();
    const thread: ThreadChannel = {
      id: opts.id ?? this.id(),
      type: opts.type ?? ChannelType.PublicThread,
      guild_id: this.guildId,
      parent_id: parentId,
      owner_id: ownerId,
      name,
      last_message_id: null,
      message_count: 0,
      member_count: 1,
      rate_limit_per_user: 0,
      flags: 0 as ChannelFlags,
      total_message_sent: 0,
      thread_metadata: {
        archived: false,
        auto_archive_duration: opts.autoArchiveDuration ?? ThreadAutoArchiveDuration.OneDay,
        archive_timestamp: now,
        locked: false,
        create_timestamp: now,
      },
    };
    this.channels.set(thread.id, thread);
    this.messages.set(thread.id, []);
    const member =
      ownerId === this.botUser.id
        ? { member: { id: thread.id, user_id: ownerId, join_timestamp: now, flags: 0 } }
        : {};
    this.dispatch('THREAD_CREATE', { ...this.copy(thread), ...member, newly_created: true });
    return thread;
  }

  /** Archives or reopens a thread (optionally locking it) and dispatches THREAD_UPDATE with the whole channel. */
  setArchived(thread: ThreadChannel, archived: boolean, locked?: boolean): void {
    thread.thread_metadata.archived = archived;
    if (locked !== undefined) thread.thread_metadata.locked = locked;
    thread.thread_metadata.archive_timestamp = this.iso();
    this.announceChannel(thread);
  }

  /** THREAD_UPDATE for a thread, CHANNEL_UPDATE for anything else, with a copy of the whole channel. */
  announceChannel(channel: Channel): void {
    this.dispatch(isThread(channel) ? 'THREAD_UPDATE' : 'CHANNEL_UPDATE', this.copy(channel));
  }

  /** Deletes a channel or thread: THREAD_DELETE carries only `{id, guild_id, parent_id, type}`. */
  deleteChannel(id: string): void {
    const channel = this.channel(id);
    // Messages stay readable by tests (channelMessages); REST on the channel answers 10003.
    this.channels.delete(id);
    this.deleted.add(id);
    if (isThread(channel)) {
      this.dispatch('THREAD_DELETE', {
        id,
        guild_id: this.guildId,
        parent_id: channel.parent_id,
        type: channel.type,
      });
      return;
    }
    for (const t of this.threads()) {
      if (t.parent_id !== id) continue;
      this.channels.delete(t.id);
      this.deleted.add(t.id);
    }
    this.dispatch('CHANNEL_DELETE', this.copy(channel));
  }

  /** INTERACTION_CREATE: interactions go to every identified connection, whatever its intents. */
  dispatchInteraction(data: Record<string, unknown>): void {
    this.dispatch('INTERACTION_CREATE', data);
  }

  /** A deep copy, so a dispatch or a response never changes with later state. */
  copy<T>(value: T): T {
    return structuredClone(value);
  }

  // ---- messages -------------------------------------------------------------------------------------------

  /** The channel's messages as tests see them (edits applied, reactions and threads attached), in order. */
  channelMessages(channelId: string): EmulatedMessage[] {
    return (this.messages.get(channelId) ?? []).map((m) => this.view(m));
  }

  /** Whether this very message object is in its channel (not ephemeral, not deleted). */
  isStored(m: EmulatedMessage): boolean {
    return this.messages.get(m.channel_id)?.includes(m) ?? false;
  }

  /** The stored message, or 404 Unknown Message (10008). */
  message(channelId: string, messageId: string): EmulatedMessage {
    this.channel(channelId);
    const m = this.messages.get(channelId)?.find((x) => x.id === messageId);
    if (!m) throw DiscordErrors.unknownMessage();
    return m;
  }

  /**
   * Builds a message from a checked payload; unless `ephemeral`, stores it, updates the channel counters and
   * dispatches MESSAGE_CREATE, as Discord echoes every message, the bot's own included.
   */
  createMessage(
    channelId: string,
    author: APIUser,
    payload: MessagePayload,
    extra: Partial<EmulatedMessage> = {},
    opts: { ephemeral?: boolean } = {},
  ): EmulatedMessage {
    const channel = this.channel(channelId);
    const ref = payload.message_reference;
    const replied = ref?.message_id
      ? this.messages.get(channelId)?.find((x) => x.id === ref.message_id)
      : undefined;
    const content = payload.content ?? '';
    const message: EmulatedMessage = {
      id: this.id(),
      channel_id: channelId,
      author,
      content,
      timestamp: this.iso(),
      edited_timestamp: null,
      tts: payload.tts ?? false,
      ...this.resolveMentions(content, payload.allowed_mentions, replied),
      attachments: payload.attachments ?? [],
      embeds: payload.embeds ?? [],
      pinned: false,
      type: replied ? MessageType.Reply : MessageType.Default,
      flags: payload.flags ?? 0,
      components: payload.components ?? [],
      ...(payload.nonce !== undefined && { nonce: payload.nonce }),
      ...(ref && {
        message_reference: {
          type: 0,
          guild_id: this.guildId,
          message_id: ref.message_id,
          channel_id: ref.channel_id ?? channelId,
        },
      }),
      ...(payload.allowed_mentions && { allowed_mentions: payload.allowed_mentions }),
      ...extra,
    };
    if (opts.ephemeral) return message;
    this.messages.get(channelId)?.push(message);
    channel.last_message_id = message.id;
    if (isThread(channel)) {
      channel.message_count++;
      channel.total_message_sent++;
    }
    this.dispatch('MESSAGE_CREATE', this.gatewayMessage(message));
    this.events.emit('messageCreate', this.view(message));
    return message;
  }

  /** Applies an edit and, for a stored message, dispatches MESSAGE_UPDATE with the whole message. */
  editMessage(message: EmulatedMessage, patch: MessagePayload, opts: { stored?: boolean } = {}): void {
    if (patch.content !== undefined) {
      message.content = patch.content ?? '';
      const allowed = patch.allowed_mentions ?? message.allowed_mentions;
      const ref = message.type === MessageType.Reply ? message.message_reference?.message_id : undefined;
      const replied = ref ? this.messages.get(message.channel_id)?.find((x) => x.id === ref) : undefined;
      Object.assign(message, this.resolveMentions(message.content, allowed, replied));
    }
    if (patch.embeds !== undefined) message.embeds = patch.embeds;
    if (patch.components !== undefined) message.components = patch.components;
    if (patch.allowed_mentions !== undefined) message.allowed_mentions = patch.allowed_mentions;
    if (patch.attachments !== undefined) message.attachments = [...message.attachments, ...patch.attachments];
    // An edit ends the "is thinking…" state of a deferred interaction reply.
    if (message.flags !== undefined) message.flags &= ~128;
    message.edited_timestamp = this.iso();
    if (opts.stored === false) return;
    this.dispatch('MESSAGE_UPDATE', this.gatewayMessage(message));
    this.events.emit('messageUpdate', this.view(message));
  }

  deleteMessage(message: EmulatedMessage): void {
    const list = this.messages.get(message.channel_id);
    const i = list?.indexOf(message) ?? -1;
    if (list && i >= 0) list.splice(i, 1);
    this.reactionSets.delete(`${message.channel_id}/${message.id}`);
    this.dispatch('MESSAGE_DELETE', {
      id: message.id,
      channel_id: message.channel_id,
      guild_id: this.guildId,
    });
    this.events.emit('messageDelete', this.view(message));
  }

  /** TYPING_START for the bot (discord.js asks with POST /channels/:id/typing). */
  typing(channelId: string): void {
    this.dispatch('TYPING_START', {
      channel_id: channelId,
      guild_id: this.guildId,
      user_id: this.botUser.id,
      timestamp: Math.floor(this.now() / 1000),
      member: this.member(this.botUser.id),
    });
  }

  /** The bot's own reaction on or off; dispatches MESSAGE_REACTION_ADD / _REMOVE. */
  setReaction(message: EmulatedMessage, emoji: string, on: boolean): void {
    const key = `${message.channel_id}/${message.id}`;
    const set = this.reactionSets.get(key) ?? new Set<string>();
    const had = set.has(emoji);
    if (on) set.add(emoji);
    else set.delete(emoji);
    this.reactionSets.set(key, set);
    if (had === on) return;
    this.dispatch(on ? 'MESSAGE_REACTION_ADD' : 'MESSAGE_REACTION_REMOVE', {
      user_id: this.botUser.id,
      channel_id: message.channel_id,
      message_id: message.id,
      guild_id: this.guildId,
      emoji: parseEmoji(emoji),
      burst: false,
      type: 0,
      ...(on && { member: this.member(this.botUser.id), message_author_id: message.author.id }),
    });
  }

  /** The bot's current reactions on a message, in the order they were added. */
  reactions(channelId: string, messageId: string): string[] {
    return [...(this.reactionSets.get(`${channelId}/${messageId}`) ?? [])];
  }

  /** The message with what Discord computes on read: reactions, the thread it started, the replied message. */
  view(m: EmulatedMessage, nested = false): EmulatedMessage {
    const out = this.copy(m);
    const reactions: APIReaction[] = this.reactions(m.channel_id, m.id).map((e) => ({
      emoji: parseEmoji(e),
      count: 1,
      count_details: { burst: 0, normal: 1 },
      me: true,
      me_burst: false,
      burst_colors: [],
    }));
    if (reactions.length > 0) out.reactions = reactions;
    const thread = this.thread(m.id);
    if (thread && thread.parent_id === m.channel_id) out.thread = this.copy(thread);
    const ref = m.message_reference?.message_id;
    // Like Discord, one level: a referenced message carries no referenced message of its own.
    if (m.type === MessageType.Reply && ref && !nested) {
      const replied = this.messages.get(m.channel_id)?.find((x) => x.id === ref);
      if (replied) {
        const { allowed_mentions: _kept, ...shown } = this.view(replied, true);
        out.referenced_message = shown;
      } else out.referenced_message = null;
    }
    return out;
  }

  /** The message as Discord returns it over REST: without the emulator's bookkeeping. */
  publicMessage(m: EmulatedMessage): APIMessage {
    const { allowed_mentions: _kept, ...rest } = this.view(m);
    return rest;
  }

  /** MESSAGE_CREATE / MESSAGE_UPDATE data: the message with guild_id, channel_type and members. */
  gatewayMessage(m: EmulatedMessage): Record<string, unknown> {
    const channel = this.channels.get(m.channel_id);
    const memberOf = (userId: string) => {
      if (!this.users.has(userId)) return undefined;
      const { user: _user, ...member } = this.member(userId);
      return member;
    };
    return {
      ...this.publicMessage(m),
      guild_id: this.guildId,
      ...(channel && { channel_type: channel.type }),
      ...(m.webhook_id === undefined && { member: memberOf(m.author.id) }),
      mentions: m.mentions.map((u) => ({ ...u, member: memberOf(u.id) })),
    };
  }

  /**
   * Who a message pings: users (`<@id>`), roles (`<@&id>`), @everyone/@here, and the author of a replied-to
   * message, each only where `allowed_mentions` lets it (all of them when it is absent).
   */
  private resolveMentions(
    content: string,
    allowed: APIAllowedMentions | undefined,
    replied: EmulatedMessage | undefined,
  ): Pick<APIMessage, 'mentions' | 'mention_roles' | 'mention_everyone'> {
    const parse = new Set<string>(allowed ? (allowed.parse ?? []) : ['users', 'roles', 'everyone']);
    const userIds = new Set([...content.matchAll(USER_MENTION)].map((x) => x[1]!));
    const mentions = [...userIds]
      .filter((id) => parse.has('users') || allowed?.users?.includes(id))
      .map((id) => this.users.get(id))
      .filter((u): u is APIUser => u !== undefined);
    if (replied && (allowed ? allowed.replied_user === true : true) && !userIds.has(replied.author.id)) {
      mentions.push(replied.author);
    }
    const mention_roles = [...new Set([...content.matchAll(ROLE_MENTION)].map((x) => x[1]!))].filter(
      (id) => this.roles.has(id) && (parse.has('roles') || allowed?.roles?.includes(id)),
    );
    const mention_everyone = parse.has('everyone') && /@(everyone|here)\b/.test(content);
    return { mentions: this.copy(mentions), mention_roles, mention_everyone };
  }

  // ---- guild ----------------------------------------------------------------------------------------------

  guild(): APIGuild {
    return {
      id: this.guildId,
      name: 'Emulated guild',
      icon: null,
      splash: null,
      discovery_splash: null,
      owner_id: this.botUser.id,
      afk_channel_id: null,
      afk_timeout: 300,
      verification_level: GuildVerificationLevel.None,
      default_message_notifications: GuildDefaultMessageNotifications.AllMessages,
      explicit_content_filter: GuildExplicitContentFilter.Disabled,
      roles: this.copy([...this.roles.values()]),
      emojis: [],
      features: [],
      mfa_level: GuildMFALevel.None,
      application_id: null,
      system_channel_id: null,
      system_channel_flags: GuildSystemChannelFlags.SuppressJoinNotifications,
      rules_channel_id: null,
      vanity_url_code: null,
      description: null,
      banner: null,
      premium_tier: GuildPremiumTier.None,
      preferred_locale: Locale.EnglishUS,
      public_updates_channel_id: null,
      nsfw_level: GuildNSFWLevel.Default,
      premium_progress_bar_enabled: false,
      stickers: [],
      hub_type: null,
      safety_alerts_channel_id: null,
      incidents_data: null,
    };
  }

  /** GUILD_CREATE at connect: channels, active threads only (as Discord), the bot as the one member sent. */
  guildCreate(): GatewayGuildCreateDispatchData {
    const channels = [...this.channels.values()];
    return {
      ...this.guild(),
      joined_at: this.joinedAt.get(this.botUser.id) ?? this.iso(),
      large: false,
      unavailable: false,
      member_count: this.users.size,
      members: [this.member(this.botUser.id)],
      channels: this.copy(channels.filter((c): c is TextChannel => !isThread(c))),
      threads: this.copy(channels.filter(isThread).filter((t) => !t.thread_metadata.archived)),
      presences: [],
      voice_states: [],
      stage_instances: [],
      guild_scheduled_events: [],
      soundboard_sounds: [],
    };
  }
}

/** `name:id` (custom, as discord.js encodes it) or a unicode emoji, as a reaction emoji object. */
function parseEmoji(emoji: string): { id: string | null; name: string } {
  const custom = /^a?:?([^:]+):(\d+)$/.exec(emoji);
  return custom ? { id: custom[2]!, name: custom[1]! } : { id: null, name: emoji };
}
