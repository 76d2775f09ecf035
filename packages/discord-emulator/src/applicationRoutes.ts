import type { APIApplicationCommand } from 'discord-api-types/v10';
import type { EmulatorState } from './EmulatorState.js';
import { HttpError, invalidFormBody } from './HttpError.js';
import type { RouteDefinition } from './RestRouter.js';

export interface ApplicationRoutesOptions {
  readonly state: EmulatorState;
  /** `ws://127.0.0.1:PORT`, without a query (discord.js appends `?v=10&encoding=json`). */
  readonly gatewayUrl: () => string;
}

const COMMAND_NAME = /^[-_'\p{L}\p{N}]{1,32}$/u;

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const unknownApplication = () => new HttpError(404, { message: 'Unknown Application', code: 10002 });
const unknownUser = () => new HttpError(404, { message: 'Unknown User', code: 10013 });

/** Chat-input command names are lowercase, 1-32 characters; descriptions 1-100; at most 25 options. */
function checkCommand(c: unknown, at: string[]): Record<string, unknown> {
  if (!isRecord(c)) throw invalidFormBody(at, 'DICT_TYPE_CONVERT', 'Only dictionaries may be used.');
  const type = c.type ?? 1;
  if (
    typeof c.name !== 'string' ||
    !COMMAND_NAME.test(c.name) ||
    (type === 1 && c.name !== c.name.toLowerCase())
  )
    throw invalidFormBody([...at, 'name'], 'APPLICATION_COMMAND_INVALID_NAME', 'Command name is invalid');
  checkOptions(c, at, type === 1);
  return c;
}

function checkOptions(c: Record<string, unknown>, at: string[], needsDescription: boolean): void {
  if (needsDescription) {
    const d = c.description;
    if (typeof d !== 'string' || d.length < 1 || d.length > 100)
      throw invalidFormBody(
        [...at, 'description'],
        'BASE_TYPE_BAD_LENGTH',
        'Must be between 1 and 100 in length.',
      );
  }
  const options: unknown[] = Array.isArray(c.options) ? c.options : [];
  if (options.length > 25)
    throw invalidFormBody([...at, 'options'], 'BASE_TYPE_MAX_LENGTH', 'Must be 25 or fewer in length.');
  options.forEach((o, i) => {
    const oat = [...at, 'options', String(i)];
    if (!isRecord(o) || typeof o.name !== 'string' || !COMMAND_NAME.test(o.name))
      throw invalidFormBody([...oat, 'name'], 'APPLICATION_COMMAND_INVALID_NAME', 'Command name is invalid');
    checkOptions(o, oat, true);
  });
}

/** Gateway discovery, the bot's user and application, the guild and its members, and command registration. */
export function applicationRoutes(opts: ApplicationRoutesOptions): RouteDefinition[] {
  const { state } = opts;
  const guild = (id: string | undefined) => {
    if (id !== state.guildId) throw new HttpError(404, { message: 'Unknown Guild', code: 10004 });
  };
  const app = (id: string | undefined) => {
    if (id !== state.applicationId) throw unknownApplication();
  };

  const putCommands = (scope: string, body: unknown): APIApplicationCommand[] => {
    if (!Array.isArray(body)) throw invalidFormBody([], 'BASE_TYPE_ARRAY', 'Must be an array.');
    if (body.length > 100)
      throw invalidFormBody([], 'BASE_TYPE_MAX_LENGTH', 'Must be 100 or fewer in length.');
    const previous = state.commands.get(scope) ?? [];
    const list = body.map((c: unknown, i) => {
      const checked = checkCommand(c, [String(i)]);
      const kept = previous.find((p) => p.name === checked.name);
      return {
        id: kept?.id ?? state.id(),
        application_id: state.applicationId,
        version: state.id(),
        type: 1,
        description: '',
        default_member_permissions: null,
        nsfw: false,
        ...(scope !== 'global' && { guild_id: scope }),
        ...checked,
      } as APIApplicationCommand;
    });
    state.commands.set(scope, list);
    return state.copy(list);
  };

  const postCommand = (scope: string, body: unknown): APIApplicationCommand => {
    const checked = checkCommand(body, []);
    const rest = (state.commands.get(scope) ?? []).filter((c) => c.name !== checked.name);
    const [created] = putCommands(scope, [...rest, checked]).slice(-1);
    return created!;
  };

  return [
    {
      method: 'GET',
      path: '/gateway',
      auth: false,
      handler: () => ({ url: opts.gatewayUrl() }),
    },
    {
      method: 'GET',
      path: '/gateway/bot',
      handler: () => ({
        url: opts.gatewayUrl(),
        shards: 1,
        session_start_limit: { total: 1000, remaining: 999, reset_after: 14_400_000, max_concurrency: 1 },
      }),
    },
    { method: 'GET', path: '/users/@me', handler: () => state.copy(state.botUser) },
    {
      method: 'GET',
      path: '/users/:user',
      handler: (r) => {
        const user = state.users.get(r.params.user ?? '');
        if (!user) throw unknownUser();
        return state.copy(user);
      },
    },
    {
      method: 'GET',
      path: '/applications/@me',
      // No `install_params`: `null` there crashes discord.js 14.28's application.fetch().
      handler: () => ({
        id: state.applicationId,
        name: state.botUser.username,
        icon: null,
        description: '',
        summary: '',
        bot_public: true,
        bot_require_code_grant: false,
        verify_key: '0'.repeat(64),
        flags: 0,
        owner: state.copy(state.botUser),
        team: null,
        bot: state.copy(state.botUser),
        approximate_guild_count: 1,
        redirect_uris: [],
        interactions_endpoint_url: null,
        tags: [],
      }),
    },
    {
      method: 'GET',
      path: '/guilds/:guild',
      handler: (r) => {
        guild(r.params.guild);
        const counts = r.query.get('with_counts') === 'true';
        return {
          ...state.guild(),
          ...(counts && { approximate_member_count: state.users.size, approximate_presence_count: 0 }),
        };
      },
    },
    {
      method: 'GET',
      path: '/guilds/:guild/channels',
      handler: (r) => {
        guild(r.params.guild);
        return state.guildCreate().channels;
      },
    },
    {
      method: 'GET',
      path: '/guilds/:guild/roles',
      handler: (r) => {
        guild(r.params.guild);
        return state.copy([...state.roles.values()]);
      },
    },
    {
      method: 'GET',
      path: '/guilds/:guild/members/:user',
      handler: (r) => {
        guild(r.params.guild);
        return state.member(r.params.user ?? '');
      },
    },
    {
      method: 'GET',
      path: '/guilds/:guild/threads/active',
      handler: (r) => {
        guild(r.params.guild);
        return { threads: state.guildCreate().threads, members: [] };
      },
    },
    ...(['global', 'guild'] as const).flatMap((scope): RouteDefinition[] => {
      const path =
        scope === 'global' ? '/applications/:app/commands' : '/applications/:app/guilds/:guild/commands';
      const scopeOf = (params: Readonly<Record<string, string>>) => {
        app(params.app);
        if (scope === 'global') return 'global';
        guild(params.guild);
        return params.guild ?? '';
      };
      return [
        { method: 'GET', path, handler: (r) => state.copy(state.commands.get(scopeOf(r.params)) ?? []) },
        { method: 'PUT', path, handler: (r) => putCommands(scopeOf(r.params), r.body) },
        { method: 'POST', path, handler: (r) => postCommand(scopeOf(r.params), r.body) },
      ];
    }),
  ];
}
