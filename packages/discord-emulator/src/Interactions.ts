import {
  type APIApplicationCommandInteractionDataOption,
  type APIMessage,
  type APIMessageInteractionMetadata,
  type APIUser,
  ApplicationCommandOptionType,
  InteractionResponseType,
  InteractionType,
  MessageFlags,
  MessageType,
} from 'discord-api-types/v10';
import { ALL_PERMISSIONS, type EmulatedMessage, type EmulatorState } from './EmulatorState.js';
import { DiscordErrors, HttpError, invalidFormBody } from './HttpError.js';
import { type MessagePayload, parseMessagePayload } from './messageLimits.js';
import type { RouteDefinition, RouteRequest } from './RestRouter.js';

/** The first answer a bot gave to an interaction: callback type and data as sent. */
export interface InteractionResponse {
  readonly type: number;
  readonly data?: Record<string, unknown>;
}

/** What a test holds after `runCommand` or `pressButton`. */
export interface InteractionHandle {
  readonly id: string;
  readonly token: string;
  /**
   * The bot's first response. Rejects when it came after the deadline (the bot got 10062) or, with the real
   * clock, when none came within the deadline.
   */
  readonly initialResponse: Promise<InteractionResponse>;
  /** The original response message (current state), once the bot replied, deferred or updated. */
  original(): APIMessage | undefined;
  /** Follow-up messages, in order. */
  followups(): APIMessage[];
  /** Whether the original response is ephemeral (flags 64). */
  ephemeral(): boolean;
}

/** Options of a slash command: `{name: value}` (types taken from the registered command) or raw options. */
export type CommandOptionsInput =
  | Readonly<Record<string, string | number | boolean>>
  | readonly APIApplicationCommandInteractionDataOption[];

interface InteractionRecord {
  readonly id: string;
  readonly token: string;
  readonly type:
    | InteractionType.ApplicationCommand
    | InteractionType.MessageComponent
    | InteractionType.ApplicationCommandAutocomplete;
  readonly channelId: string;
  readonly user: APIUser;
  readonly createdAt: number;
  readonly commandName: string | undefined;
  /** The message holding the pressed component. */
  readonly message: EmulatedMessage | undefined;
  responded: boolean;
  original: EmulatedMessage | undefined;
  /** Whether `original` is a channel message (not ephemeral, not the component's own message). */
  ephemeral: boolean;
  readonly followups: EmulatedMessage[];
  timer: NodeJS.Timeout | undefined;
  readonly resolve: (r: InteractionResponse) => void;
  readonly reject: (err: Error) => void;
}

export interface InteractionsOptions {
  readonly state: EmulatorState;
  readonly now: () => number;
  /** First response deadline, ms. */
  readonly deadlineMs: number;
  /** Arm a real timer that rejects `initialResponse` at the deadline (off with an injected clock). */
  readonly deadlineTimers: boolean;
}

/** Interaction tokens stay valid for follow-ups and edits this long. */
const TOKEN_TTL_MS = 15 * 60_000;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Interactions as Discord runs them: INTERACTION_CREATE out, then the callback (one initial response within the
 * deadline: 4 reply, 5 deferred reply, 6 deferred update, 7 update message, 9 modal), then webhook edits and
 * follow-ups with the interaction token for 15 minutes.
 */
export class Interactions {
  private readonly byToken = new Map<string, InteractionRecord>();

  constructor(private readonly opts: InteractionsOptions) {}

  /** Dispatches INTERACTION_CREATE for a chat-input command. */
  runCommand(
    channelId: string,
    user: APIUser,
    name: string,
    options?: CommandOptionsInput,
  ): InteractionHandle {
    const { state } = this.opts;
    const command =
      state.commands.get(state.guildId)?.find((c) => c.name === name) ??
      state.commands.get('global')?.find((c) => c.name === name);
    const resolved = toOptions(options, command?.options);
    return this.create(InteractionType.ApplicationCommand, channelId, user, undefined, name, {
      id: command?.id ?? state.id(),
      name,
      type: 1,
      ...(command?.guild_id && { guild_id: command.guild_id }),
      ...(resolved.length > 0 && { options: resolved }),
    });
  }

  /**
   * Dispatches INTERACTION_CREATE type 4 while a user types option `focused` of command `name`: the option
   * carries `focused: true` and the text so far. The bot must answer with type 8 and at most 25 choices.
   */
  autocomplete(
    channelId: string,
    user: APIUser,
    name: string,
    focused: string,
    typed: string,
  ): InteractionHandle {
    const { state } = this.opts;
    const command =
      state.commands.get(state.guildId)?.find((c) => c.name === name) ??
      state.commands.get('global')?.find((c) => c.name === name);
    return this.create(InteractionType.ApplicationCommandAutocomplete, channelId, user, undefined, name, {
      id: command?.id ?? state.id(),
      name,
      type: 1,
      ...(command?.guild_id && { guild_id: command.guild_id }),
      options: [{ name: focused, type: ApplicationCommandOptionType.String, value: typed, focused: true }],
    });
  }

  /** Dispatches INTERACTION_CREATE for a button press on a message. */
  pressButton(channelId: string, messageId: string, customId: string, user: APIUser): InteractionHandle {
    const message = this.opts.state.message(channelId, messageId);
    return this.create(InteractionType.MessageComponent, channelId, user, message, undefined, {
      custom_id: customId,
      component_type: 2,
    });
  }

  /** Stops the deadline timers. */
  close(): void {
    for (const r of this.byToken.values()) clearTimeout(r.timer);
  }

  routes(): RouteDefinition[] {
    const webhook = (p: Readonly<Record<string, string>>) => this.webhookRecord(p.app ?? '', p.token ?? '');
    return [
      {
        method: 'POST',
        path: '/interactions/:id/:token/callback',
        auth: false,
        handler: (r) => this.callback(r),
      },
      {
        method: 'GET',
        path: '/webhooks/:app/:token/messages/@original',
        auth: false,
        handler: (r) => this.show(this.originalOf(webhook(r.params))),
      },
      {
        method: 'PATCH',
        path: '/webhooks/:app/:token/messages/@original',
        auth: false,
        handler: (r) => this.edit(webhook(r.params), this.originalOf(webhook(r.params)), r),
      },
      {
        method: 'DELETE',
        path: '/webhooks/:app/:token/messages/@original',
        auth: false,
        handler: (r) => this.remove(webhook(r.params), this.originalOf(webhook(r.params))),
      },
      {
        method: 'POST',
        path: '/webhooks/:app/:token',
        auth: false,
        handler: (r) => this.followup(webhook(r.params), r),
      },
      {
        method: 'GET',
        path: '/webhooks/:app/:token/messages/:msg',
        auth: false,
        handler: (r) => this.show(this.followupOf(webhook(r.params), r.params.msg ?? '')),
      },
      {
        method: 'PATCH',
        path: '/webhooks/:app/:token/messages/:msg',
        auth: false,
        handler: (r) => {
          const record = webhook(r.params);
          return this.edit(record, this.followupOf(record, r.params.msg ?? ''), r);
        },
      },
      {
        method: 'DELETE',
        path: '/webhooks/:app/:token/messages/:msg',
        auth: false,
        handler: (r) => {
          const record = webhook(r.params);
          return this.remove(record, this.followupOf(record, r.params.msg ?? ''));
        },
      },
    ];
  }

  private create(
    type: InteractionRecord['type'],
    channelId: string,
    user: APIUser,
    message: EmulatedMessage | undefined,
    commandName: string | undefined,
    data: Record<string, unknown>,
  ): InteractionHandle {
    const { state } = this.opts;
    const channel = state.channel(channelId);
    if (!state.users.has(user.id)) throw new Error(`interaction: ${user.id} is not a member of the guild`);
    const id = state.id();
    const token = `emulator-interaction-token-${id}`;
    let resolve!: InteractionRecord['resolve'];
    let reject!: InteractionRecord['reject'];
    const initialResponse = new Promise<InteractionResponse>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A test that never awaits the response must not see an unhandled rejection.
    initialResponse.catch(() => {});
    const record: InteractionRecord = {
      id,
      token,
      type,
      channelId,
      user,
      createdAt: this.opts.now(),
      commandName,
      message,
      responded: false,
      original: undefined,
      ephemeral: false,
      followups: [],
      timer: undefined,
      resolve,
      reject,
    };
    if (this.opts.deadlineTimers) {
      record.timer = setTimeout(() => {
        if (!record.responded) record.reject(this.lateError(record, 'no response'));
      }, this.opts.deadlineMs);
      record.timer.unref();
    }
    this.byToken.set(token, record);
    state.dispatchInteraction({
      id,
      application_id: state.applicationId,
      type,
      token,
      version: 1,
      data,
      guild_id: state.guildId,
      guild: { id: state.guildId, locale: 'en-US', features: [] },
      channel: state.copy(channel),
      channel_id: channelId,
      member: { ...state.member(user.id), permissions: ALL_PERMISSIONS },
      ...(message && { message: state.publicMessage(message) }),
      app_permissions: ALL_PERMISSIONS,
      locale: 'en-US',
      guild_locale: 'en-US',
      entitlements: [],
      authorizing_integration_owners: { '0': state.guildId },
      context: 0,
      attachment_size_limit: 10 * 1024 * 1024,
    });
    return {
      id,
      token,
      initialResponse,
      original: () => (record.original ? this.show(record.original) : undefined),
      followups: () => record.followups.map((m) => this.show(m)),
      ephemeral: () => record.ephemeral,
    };
  }

  private lateError(record: InteractionRecord, what: string): Error {
    return new Error(
      `interaction ${record.commandName ? `/${record.commandName}` : 'button press'} got ${what} within ` +
        `${this.opts.deadlineMs} ms`,
    );
  }

  /** `POST /interactions/:id/:token/callback`: 10062 when late or unknown, 40060 when already answered. */
  private callback(r: RouteRequest): unknown {
    const record = this.byToken.get(r.params.token ?? '');
    const now = this.opts.now();
    if (!record || record.id !== r.params.id || now - record.createdAt > TOKEN_TTL_MS)
      throw DiscordErrors.unknownInteraction();
    if (record.responded) throw DiscordErrors.alreadyAcknowledged();
    if (now - record.createdAt > this.opts.deadlineMs) {
      record.reject(this.lateError(record, 'its first response after the deadline, not'));
      throw DiscordErrors.unknownInteraction();
    }
    const body = isRecord(r.body) ? r.body : {};
    const type = body.type;
    const data = isRecord(body.data) ? body.data : undefined;
    const forComponent = record.type === InteractionType.MessageComponent;
    // An autocomplete interaction takes only a list of choices.
    const allowed = new Set<unknown>(
      record.type === InteractionType.ApplicationCommandAutocomplete
        ? [InteractionResponseType.ApplicationCommandAutocompleteResult]
        : [
            InteractionResponseType.ChannelMessageWithSource,
            InteractionResponseType.DeferredChannelMessageWithSource,
            InteractionResponseType.Modal,
            ...(forComponent
              ? [InteractionResponseType.DeferredMessageUpdate, InteractionResponseType.UpdateMessage]
              : []),
          ],
    );
    if (!allowed.has(type)) {
      throw invalidFormBody(
        ['type'],
        'INTERACTION_RESPONSE_TYPE_INVALID',
        `Interaction response type ${String(type)} is not valid for this interaction.`,
      );
    }
    const ephemeral = ((Number(data?.flags ?? 0) & MessageFlags.Ephemeral) as number) !== 0;
    const { state } = this.opts;
    switch (type) {
      case InteractionResponseType.ChannelMessageWithSource: {
        const payload = parseMessagePayload(data, { requireSome: true, attachments: r.files });
        record.original = this.post(record, payload, ephemeral);
        record.ephemeral = ephemeral;
        break;
      }
      case InteractionResponseType.DeferredChannelMessageWithSource:
        record.original = this.post(
          record,
          { content: '', flags: MessageFlags.Loading | (ephemeral ? MessageFlags.Ephemeral : 0) },
          ephemeral,
        );
        record.ephemeral = ephemeral;
        break;
      case InteractionResponseType.ApplicationCommandAutocompleteResult:
        checkChoices(data?.choices);
        break;
      case InteractionResponseType.DeferredMessageUpdate:
        record.original = record.message;
        break;
      case InteractionResponseType.UpdateMessage: {
        const payload = parseMessagePayload(data, { requireSome: false, attachments: r.files });
        if (record.message) state.editMessage(record.message, payload);
        record.original = record.message;
        break;
      }
      default:
        break;
    }
    record.responded = true;
    clearTimeout(record.timer);
    record.resolve(data === undefined ? { type: Number(type) } : { type: Number(type), data });
    if (r.query.get('with_response') !== 'true') return undefined;
    return {
      interaction: {
        id: record.id,
        type: record.type,
        activity_instance_id: null,
        response_message_id: record.original?.id ?? null,
        response_message_loading: type === InteractionResponseType.DeferredChannelMessageWithSource,
        response_message_ephemeral: record.ephemeral,
      },
      resource: { type, ...(record.original && { message: this.show(record.original) }) },
    };
  }

  /** A message written through the interaction: stored and dispatched unless ephemeral. */
  private post(record: InteractionRecord, payload: MessagePayload, ephemeral: boolean): EmulatedMessage {
    const { state } = this.opts;
    const metadata = {
      id: record.id,
      type: record.type,
      user: record.user,
      authorizing_integration_owners: { '0': state.guildId },
      ...(record.message && { interacted_message_id: record.message.id }),
      ...(record.original && { original_response_message_id: record.original.id }),
    } as APIMessageInteractionMetadata;
    return state.createMessage(
      record.channelId,
      state.botUser,
      payload,
      {
        type: record.commandName ? MessageType.ChatInputCommand : MessageType.Default,
        webhook_id: state.applicationId,
        application_id: state.applicationId,
        interaction_metadata: metadata,
        ...(record.commandName && {
          interaction: { id: record.id, type: record.type, name: record.commandName, user: record.user },
        }),
      },
      { ephemeral },
    );
  }

  private webhookRecord(app: string, token: string): InteractionRecord {
    const record = this.byToken.get(token);
    if (app !== this.opts.state.applicationId || !record) throw DiscordErrors.unknownWebhook();
    if (this.opts.now() - record.createdAt > TOKEN_TTL_MS)
      throw new HttpError(401, { message: 'Invalid Webhook Token', code: 50027 });
    return record;
  }

  private originalOf(record: InteractionRecord): EmulatedMessage {
    if (!record.original) throw DiscordErrors.unknownMessage();
    return record.original;
  }

  private followupOf(record: InteractionRecord, messageId: string): EmulatedMessage {
    const m =
      record.followups.find((x) => x.id === messageId) ??
      (record.original?.id === messageId ? record.original : undefined);
    if (!m) throw DiscordErrors.unknownMessage();
    return m;
  }

  private show(m: EmulatedMessage): APIMessage {
    return this.opts.state.publicMessage(m);
  }

  /** PATCH @original or a follow-up: edits it; channel messages dispatch MESSAGE_UPDATE. */
  private edit(record: InteractionRecord, m: EmulatedMessage, r: RouteRequest): APIMessage {
    const payload = parseMessagePayload(r.body, { requireSome: false, attachments: r.files });
    const stored = this.opts.state.isStored(m);
    if (stored) this.assertNotArchived(record);
    this.opts.state.editMessage(m, payload, { stored });
    return this.show(m);
  }

  private remove(record: InteractionRecord, m: EmulatedMessage): undefined {
    if (this.opts.state.isStored(m)) this.opts.state.deleteMessage(m);
    if (record.original === m) record.original = undefined;
    const i = record.followups.indexOf(m);
    if (i >= 0) record.followups.splice(i, 1);
    return undefined;
  }

  /**
   * `POST /webhooks/:app/:token`: a follow-up. After a deferred reply, the first follow-up replaces the
   * "is thinking…" message, as on Discord. `?wait=false` answers 204.
   */
  private followup(record: InteractionRecord, r: RouteRequest): APIMessage | undefined {
    if (!record.responded) throw DiscordErrors.unknownWebhook();
    const payload = parseMessagePayload(r.body, { requireSome: true, attachments: r.files });
    const loading = record.original && ((record.original.flags ?? 0) & MessageFlags.Loading) !== 0;
    let m: EmulatedMessage;
    if (loading && record.original) {
      m = record.original;
      this.opts.state.editMessage(m, payload, { stored: this.opts.state.isStored(m) });
    } else {
      const ephemeral = ((Number(payload.flags ?? 0) & MessageFlags.Ephemeral) as number) !== 0;
      m = this.post(record, payload, ephemeral);
    }
    record.followups.push(m);
    return r.query.get('wait') === 'false' ? undefined : this.show(m);
  }

  private assertNotArchived(record: InteractionRecord): void {
    if (this.opts.state.thread(record.channelId)?.thread_metadata.archived)
      throw DiscordErrors.archivedThread();
  }
}

/** Discord's limits on autocomplete choices: at most 25, name 1-100 characters, a string value at most 100. */
function checkChoices(choices: unknown): void {
  if (!Array.isArray(choices))
    throw invalidFormBody(['data', 'choices'], 'BASE_TYPE_REQUIRED', 'This field is required');
  if (choices.length > 25)
    throw invalidFormBody(['data', 'choices'], 'BASE_TYPE_MAX_LENGTH', 'Must be 25 or fewer in length.');
  choices.forEach((c: unknown, i) => {
    const choice = isRecord(c) ? c : {};
    const name = choice.name;
    if (typeof name !== 'string' || name.length < 1 || name.length > 100)
      throw invalidFormBody(
        ['data', 'choices', String(i), 'name'],
        'BASE_TYPE_BAD_LENGTH',
        'Must be between 1 and 100 in length.',
      );
    const value = choice.value;
    const okValue =
      (typeof value === 'string' && value.length <= 100) ||
      (typeof value === 'number' && Number.isFinite(value));
    if (!okValue)
      throw invalidFormBody(
        ['data', 'choices', String(i), 'value'],
        'BASE_TYPE_MAX_LENGTH',
        'Must be 100 or fewer in length.',
      );
  });
}

/** `{name: value}` to interaction options, typed like the registered command's options where known. */
function toOptions(
  input: CommandOptionsInput | undefined,
  declared: readonly { name: string; type: ApplicationCommandOptionType }[] | undefined,
): APIApplicationCommandInteractionDataOption[] {
  if (input === undefined) return [];
  if (Array.isArray(input)) return [...(input as APIApplicationCommandInteractionDataOption[])];
  return Object.entries(input as Record<string, string | number | boolean>).map(([name, value]) => {
    const type =
      declared?.find((o) => o.name === name)?.type ??
      (typeof value === 'boolean'
        ? ApplicationCommandOptionType.Boolean
        : typeof value === 'number'
          ? Number.isInteger(value)
            ? ApplicationCommandOptionType.Integer
            : ApplicationCommandOptionType.Number
          : ApplicationCommandOptionType.String);
    return { name, type, value } as APIApplicationCommandInteractionDataOption;
  });
}
