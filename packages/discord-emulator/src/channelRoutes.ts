import { type APIMessage, ChannelType, ThreadAutoArchiveDuration } from 'discord-api-types/v10';
import { type Channel, type EmulatorState, isThread } from './EmulatorState.js';
import { DiscordErrors, invalidFormBody } from './HttpError.js';
import { isEmpty, parseMessagePayload } from './messageLimits.js';
import { type Limit, RateLimiter } from './RateLimiter.js';
import type { RouteDefinition } from './RestRouter.js';

export interface ChannelRoutesOptions {
  readonly state: EmulatorState;
  readonly now: () => number;
  /** Message POSTs per channel (`false`: no per-channel bucket). */
  readonly channelRateLimit: Limit | false;
  /** Edits of messages older than an hour, per channel, before 30046 (`false`: unlimited). */
  readonly oldMessageEditLimit: Limit | false;
  /** A bot post reopened an archived thread (a bot should never do this). */
  readonly onReopenedByBot: (threadId: string) => void;
}

const HOUR_MS = 60 * 60_000;
const ARCHIVE_DURATIONS = new Set<unknown>(Object.values(ThreadAutoArchiveDuration));

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/** 1 to 100 characters, as Discord requires of channel and thread names. */
function checkName(name: unknown, required: boolean): string | undefined {
  if (name === undefined && !required) return undefined;
  if (typeof name !== 'string' || name.trim().length === 0)
    throw invalidFormBody(['name'], 'BASE_TYPE_REQUIRED', 'This field is required');
  if (name.length > 100)
    throw invalidFormBody(['name'], 'BASE_TYPE_BAD_LENGTH', 'Must be between 1 and 100 in length.');
  return name.trim();
}

function checkArchiveDuration(value: unknown): ThreadAutoArchiveDuration | undefined {
  if (value === undefined || value === null) return undefined;
  if (!ARCHIVE_DURATIONS.has(value))
    throw invalidFormBody(
      ['auto_archive_duration'],
      'BASE_TYPE_CHOICES',
      'Value must be one of {60, 1440, 4320, 10080}.',
    );
  return value as ThreadAutoArchiveDuration;
}

/**
 * Channel, message, thread and reaction routes the bot uses, with Discord's rules: archived threads refuse edits,
 * reactions and deletions (50083) and are reopened by a post unless locked; deleted channels are 10003, unknown
 * messages 10008.
 */
export function channelRoutes(opts: ChannelRoutesOptions): RouteDefinition[] {
  const { state } = opts;
  const oldEdits = new RateLimiter();

  const notArchived = (channel: Channel): void => {
    if (isThread(channel) && channel.thread_metadata.archived) throw DiscordErrors.archivedThread();
  };

  const createMessage = (channelId: string, body: unknown, files: RouteRequestFiles): APIMessage => {
    const channel = state.channel(channelId);
    const payload = parseMessagePayload(body, { requireSome: true, attachments: files });
    const { message_reference: ref, ...rest } = payload;
    const refFound =
      ref?.message_id !== undefined && isStoredId(state, ref.channel_id ?? channelId, ref.message_id);
    if (ref && !refFound && ref.fail_if_not_exists !== false) {
      throw invalidFormBody(['message_reference'], 'MESSAGE_REFERENCE_UNKNOWN_MESSAGE', 'Unknown message');
    }
    if (isThread(channel) && channel.thread_metadata.archived) {
      if (channel.thread_metadata.locked) throw DiscordErrors.archivedThread();
      // As on Discord: a post reopens an archived, unlocked thread. Counted, because the bot must never do it.
      opts.onReopenedByBot(channel.id);
      state.setArchived(channel, false);
    }
    // A reference to a missing message with fail_if_not_exists:false is dropped, as Discord does.
    return state.publicMessage(
      state.createMessage(
        channelId,
        state.botUser,
        ref && refFound ? { ...rest, message_reference: ref } : rest,
      ),
    );
  };

  const editMessage = (channelId: string, messageId: string, body: unknown, files: RouteRequestFiles) => {
    const channel = state.channel(channelId);
    notArchived(channel);
    const m = state.message(channelId, messageId);
    if (m.author.id !== state.botUser.id) throw DiscordErrors.cannotEditOthers();
    const payload = parseMessagePayload(body, { requireSome: false, attachments: files });
    const now = opts.now();
    if (opts.oldMessageEditLimit && now - Date.parse(m.timestamp) > HOUR_MS) {
      if (!oldEdits.take(channelId, opts.oldMessageEditLimit, now).allowed)
        throw DiscordErrors.oldMessageEdits();
    }
    const content = payload.content === undefined ? m.content : payload.content;
    const attachments = [...m.attachments, ...(payload.attachments ?? [])];
    if (isEmpty(content, payload.embeds ?? m.embeds, payload.components ?? m.components, attachments))
      throw DiscordErrors.emptyMessage();
    state.editMessage(m, payload);
    return state.publicMessage(m);
  };

  const startThreadFromMessage = (channelId: string, messageId: string, body: unknown) => {
    const parent = state.channel(channelId);
    if (isThread(parent)) throw DiscordErrors.wrongChannelType();
    state.message(channelId, messageId);
    if (state.channels.has(messageId) || state.deleted.has(messageId))
      throw DiscordErrors.threadAlreadyCreated();
    const b = isRecord(body) ? body : {};
    const name = checkName(b.name, true) ?? '';
    const autoArchiveDuration = checkArchiveDuration(b.auto_archive_duration);
    // Like Discord, a thread started from a message has the message's id.
    const thread = state.createThread(channelId, name, state.botUser.id, {
      id: messageId,
      ...(autoArchiveDuration && { autoArchiveDuration }),
    });
    return state.copy(thread);
  };

  const startThread = (channelId: string, body: unknown) => {
    const parent = state.channel(channelId);
    if (isThread(parent)) throw DiscordErrors.wrongChannelType();
    const b = isRecord(body) ? body : {};
    const name = checkName(b.name, true) ?? '';
    const autoArchiveDuration = checkArchiveDuration(b.auto_archive_duration);
    const type = b.type === ChannelType.PublicThread ? ChannelType.PublicThread : ChannelType.PrivateThread;
    const thread = state.createThread(channelId, name, state.botUser.id, {
      type,
      ...(autoArchiveDuration && { autoArchiveDuration }),
    });
    return state.copy(thread);
  };

  const patchChannel = (channelId: string, body: unknown) => {
    const channel = state.channel(channelId);
    const b = isRecord(body) ? body : {};
    const name = checkName(b.name, false);
    if (!isThread(channel)) {
      if (name !== undefined) channel.name = name;
      if (typeof b.topic === 'string' || b.topic === null) channel.topic = b.topic;
      state.announceChannel(channel);
      return state.copy(channel);
    }
    const meta = channel.thread_metadata;
    const autoArchiveDuration = checkArchiveDuration(b.auto_archive_duration);
    const staysArchived = meta.archived && b.archived !== false;
    const changesOtherThanArchiving = name !== undefined || autoArchiveDuration !== undefined;
    // An archived thread only accepts being reopened (with other changes in the same request) or re-locked.
    if (staysArchived && changesOtherThanArchiving) throw DiscordErrors.archivedThread();
    if (name !== undefined) channel.name = name;
    if (autoArchiveDuration !== undefined) meta.auto_archive_duration = autoArchiveDuration;
    const locked = typeof b.locked === 'boolean' ? b.locked : undefined;
    if (typeof b.archived === 'boolean') state.setArchived(channel, b.archived, locked);
    else {
      if (locked !== undefined) meta.locked = locked;
      state.announceChannel(channel);
    }
    return state.copy(channel);
  };

  const listMessages = (channelId: string, query: URLSearchParams): APIMessage[] => {
    state.channel(channelId);
    const limit = Number(query.get('limit') ?? 50);
    if (!Number.isInteger(limit) || limit < 1 || limit > 100)
      throw invalidFormBody(['limit'], 'NUMBER_TYPE_MAX', 'int value should be between 1 and 100.');
    let all = state.channelMessages(channelId);
    const before = query.get('before');
    const after = query.get('after');
    const around = query.get('around');
    if (before) all = all.filter((m) => BigInt(m.id) < BigInt(before));
    if (after) all = all.filter((m) => BigInt(m.id) > BigInt(after));
    if (around) {
      const i = Math.max(
        0,
        all.findIndex((m) => BigInt(m.id) >= BigInt(around)),
      );
      all = all.slice(Math.max(0, i - Math.floor(limit / 2)), i + Math.ceil(limit / 2));
    }
    // Newest first, as Discord lists them; `after` alone keeps the oldest of the newer ones.
    const picked = after && !before ? all.slice(0, limit) : all.slice(-limit);
    return picked.reverse().map((m) => state.publicMessage(m));
  };

  const react = (channelId: string, messageId: string, emoji: string, on: boolean): undefined => {
    notArchived(state.channel(channelId));
    state.setReaction(state.message(channelId, messageId), emoji, on);
    return undefined;
  };

  const threadMembership = (channelId: string): undefined => {
    const channel = state.channel(channelId);
    if (!isThread(channel)) throw DiscordErrors.wrongChannelType();
    notArchived(channel);
    return undefined;
  };

  return [
    { method: 'GET', path: '/channels/:id', handler: (r) => state.copy(state.channel(r.params.id ?? '')) },
    { method: 'PATCH', path: '/channels/:id', handler: (r) => patchChannel(r.params.id ?? '', r.body) },
    {
      method: 'DELETE',
      path: '/channels/:id',
      handler: (r) => {
        const channel = state.copy(state.channel(r.params.id ?? ''));
        state.deleteChannel(channel.id);
        return channel;
      },
    },
    {
      method: 'GET',
      path: '/channels/:id/messages',
      handler: (r) => listMessages(r.params.id ?? '', r.query),
    },
    {
      method: 'POST',
      path: '/channels/:id/messages',
      limit: () => opts.channelRateLimit,
      handler: (r) => createMessage(r.params.id ?? '', r.body, r.files),
    },
    {
      method: 'GET',
      path: '/channels/:id/messages/:msg',
      handler: (r) => state.publicMessage(state.message(r.params.id ?? '', r.params.msg ?? '')),
    },
    {
      method: 'PATCH',
      path: '/channels/:id/messages/:msg',
      handler: (r) => editMessage(r.params.id ?? '', r.params.msg ?? '', r.body, r.files),
    },
    {
      method: 'DELETE',
      path: '/channels/:id/messages/:msg',
      handler: (r) => {
        notArchived(state.channel(r.params.id ?? ''));
        state.deleteMessage(state.message(r.params.id ?? '', r.params.msg ?? ''));
        return undefined;
      },
    },
    {
      method: 'POST',
      path: '/channels/:id/typing',
      handler: (r) => {
        const channel = state.channel(r.params.id ?? '');
        state.typing(channel.id);
        return undefined;
      },
    },
    {
      method: 'POST',
      path: '/channels/:id/messages/:msg/threads',
      handler: (r) => startThreadFromMessage(r.params.id ?? '', r.params.msg ?? '', r.body),
    },
    { method: 'POST', path: '/channels/:id/threads', handler: (r) => startThread(r.params.id ?? '', r.body) },
    {
      method: 'GET',
      path: '/channels/:id/threads/archived/public',
      handler: (r) => {
        const parent = state.channel(r.params.id ?? '');
        const threads = state
          .threads()
          .filter((t) => t.parent_id === parent.id && t.thread_metadata.archived)
          .map((t) => state.copy(t));
        return { threads, members: [], has_more: false };
      },
    },
    {
      method: 'PUT',
      path: '/channels/:id/messages/:msg/reactions/:emoji/@me',
      handler: (r) => react(r.params.id ?? '', r.params.msg ?? '', r.params.emoji ?? '', true),
    },
    {
      method: 'DELETE',
      path: '/channels/:id/messages/:msg/reactions/:emoji/@me',
      handler: (r) => react(r.params.id ?? '', r.params.msg ?? '', r.params.emoji ?? '', false),
    },
    {
      method: 'PUT',
      path: '/channels/:id/thread-members/@me',
      handler: (r) => threadMembership(r.params.id ?? ''),
    },
    {
      method: 'DELETE',
      path: '/channels/:id/thread-members/@me',
      handler: (r) => threadMembership(r.params.id ?? ''),
    },
  ];
}

type RouteRequestFiles = Parameters<RouteDefinition['handler']>[0]['files'];

function isStoredId(state: EmulatorState, channelId: string, messageId: string): boolean {
  try {
    state.message(channelId, messageId);
    return true;
  } catch {
    return false;
  }
}
