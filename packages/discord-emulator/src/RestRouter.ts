import { createHash } from 'node:crypto';
import type { EventEmitter } from 'node:events';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { APIAttachment } from 'discord-api-types/v10';
import type { EmulatorEvents, RequestLogEntry } from './EmulatorEvents.js';
import type { EmulatorLogger } from './EmulatorLogger.js';
import { DiscordErrors, HttpError } from './HttpError.js';
import { type Limit, type RateDecision, RateLimiter } from './RateLimiter.js';
import { snowflake } from './snowflake.js';

export type HttpMethod = 'GET' | 'POST' | 'PATCH' | 'PUT' | 'DELETE';

/** What a route handler gets: path parameters, the parsed JSON body, the query and uploaded files. */
export interface RouteRequest {
  readonly params: Readonly<Record<string, string>>;
  readonly body: unknown;
  readonly query: URLSearchParams;
  /** Files of a multipart request, as the attachments Discord would create. */
  readonly files: APIAttachment[];
}

export interface RouteDefinition {
  readonly method: HttpMethod;
  /** `/channels/:id/messages/:msg`; the log names the route `POST /channels/:id/messages`. */
  readonly path: string;
  /**
   * Needs `Authorization: Bot <token>` and counts against the global limit. Default true; interaction callbacks
   * and webhook-token routes are neither authenticated nor globally limited, as on Discord.
   */
  readonly auth?: boolean;
  /** This route's bucket, per major parameter (channel, guild or webhook). Default: the router's route limit. */
  readonly limit?: () => Limit | false;
  /** The JSON answer; `undefined` answers 204 No Content. Throw an HttpError for a Discord error. */
  readonly handler: (req: RouteRequest) => unknown;
}

export interface Fault {
  count: number;
  readonly status: 500 | 502 | 429;
  readonly route?: RegExp;
  readonly retryAfterMs: number;
}

export interface RestRouterOptions {
  readonly token: string;
  readonly globalLimit: Limit;
  /** Bucket of routes without their own limit. */
  readonly routeLimit: Limit;
  readonly now: () => number;
  readonly logger: EmulatorLogger;
  readonly events: EventEmitter<EmulatorEvents>;
  /** Where every answered request is appended. */
  readonly log: RequestLogEntry[];
}

interface CompiledRoute extends RouteDefinition {
  readonly name: string;
  readonly regex: RegExp;
  readonly keys: readonly string[];
  readonly bucket: string;
}

/** Path parameters that are snowflakes: anything else in their place is not the route. */
const SNOWFLAKE_PARAMS = new Set(['id', 'msg', 'guild', 'user', 'app', 'cmd']);

/**
 * Discord's REST surface under `/api/v10`: matches routes, checks the bot token, applies injected faults and
 * rate limits (with Discord's headers on every answer of a known route), runs the handler, answers JSON and
 * logs every request. Unknown routes get 404 `{message: '404: Not Found', code: 0}` and are logged too.
 */
export class RestRouter {
  private readonly routes: CompiledRoute[] = [];
  private readonly limiter = new RateLimiter();
  private readonly faults: Fault[] = [];

  constructor(private readonly opts: RestRouterOptions) {}

  add(...defs: RouteDefinition[]): void {
    for (const def of defs) {
      const keys: string[] = [];
      const pattern = def.path
        .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
        .replace(/:(\w+)/g, (_m, key: string) => {
          keys.push(key);
          return SNOWFLAKE_PARAMS.has(key) ? '(\\d{1,20})' : '([^/]+)';
        });
      const name = `${def.method} ${def.path}`;
      this.routes.push({
        ...def,
        name,
        keys,
        regex: new RegExp(`^${pattern}$`),
        bucket: createHash('sha1').update(name).digest('hex').slice(0, 32),
      });
    }
  }

  /** The next `count` requests to a route matching `route` (any route if absent) fail with `status`. */
  failNext(count: number, fault: Omit<Fault, 'count'>): void {
    if (!Number.isInteger(count) || count < 1)
      throw new RangeError(`failNext: count must be a positive integer, got ${count}`);
    this.faults.push({ count, ...fault });
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const raw = Buffer.concat(chunks);
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const method = (req.method ?? 'GET').toUpperCase();
    // discord.js encodes `@` in `@me` and `@original`; Discord accepts both spellings.
    const path = url.pathname.replace(/^\/api(\/v\d+)?(?=\/)/, '').replaceAll('%40', '@');
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    let route = `${method} ${path}`;
    let body: unknown;
    let status = 200;
    let response: unknown;
    try {
      if (!url.pathname.startsWith('/api/')) throw DiscordErrors.notFound();
      const match = this.match(method, path);
      if (!match) throw DiscordErrors.notFound();
      route = match.route.name;
      const auth = match.route.auth !== false;
      const fault = this.takeFault(route);
      if (fault) throw this.faultError(fault, match.route, headers);
      if (auth && req.headers.authorization !== `Bot ${this.opts.token}`) throw DiscordErrors.unauthorized();
      if (auth) this.takeGlobal();
      this.takeBucket(match.route, match.params, headers);
      const parsed = await parseBody(raw, req.headers['content-type'], this.opts.now);
      body = parsed.body;
      const result = match.route.handler({
        params: match.params,
        body,
        query: url.searchParams,
        files: parsed.files,
      });
      if (result === undefined) status = 204;
      else response = result;
    } catch (err) {
      if (err instanceof HttpError) {
        status = err.status;
        response = err.body;
        Object.assign(headers, err.headers);
      } else {
        status = 500;
        response = { message: '500: Internal Server Error', code: 0 };
        this.opts.logger.error({ err, route }, 'emulator REST: handler failed');
      }
    }
    const entry: RequestLogEntry = {
      at: this.opts.now(),
      method,
      route,
      path,
      status,
      ...(body !== undefined && { body }),
      ...(response !== undefined && { response }),
    };
    this.opts.log.push(entry);
    this.opts.logger.debug({ route, path, status }, 'emulator REST');
    this.opts.events.emit('request', entry);
    // A 204 has no body and so no content type (discord.js parses any JSON-typed body).
    if (status === 204) delete headers['content-type'];
    res.writeHead(status, headers);
    res.end(status === 204 ? undefined : JSON.stringify(response ?? {}));
  }

  private match(
    method: string,
    path: string,
  ): { route: CompiledRoute; params: Record<string, string> } | undefined {
    for (const route of this.routes) {
      if (route.method !== method) continue;
      const m = route.regex.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      route.keys.forEach((k, i) => {
        params[k] = decodeURIComponent(m[i + 1] ?? '');
      });
      return { route, params };
    }
    return undefined;
  }

  private takeFault(route: string): Fault | undefined {
    const f = this.faults.find((x) => !x.route || x.route.test(route));
    if (!f) return undefined;
    f.count--;
    if (f.count <= 0) this.faults.splice(this.faults.indexOf(f), 1);
    return f;
  }

  /** An injected failure; an injected 429 carries the route's bucket headers, exhausted until `retryAfterMs`. */
  private faultError(fault: Fault, route: CompiledRoute, headers: Record<string, string>): HttpError {
    if (fault.status !== 429) {
      return new HttpError(fault.status, { message: `${fault.status}: emulated server error`, code: 0 });
    }
    const limit = this.limitOf(route);
    const now = this.opts.now();
    Object.assign(
      headers,
      rateLimitHeaders(route.bucket, {
        allowed: false,
        limit: limit ? limit.limit : 1,
        remaining: 0,
        resetAfter: fault.retryAfterMs / 1000,
        reset: (now + fault.retryAfterMs) / 1000,
      }),
    );
    return tooManyRequests(fault.retryAfterMs / 1000, 'user');
  }

  /** The bot's global bucket: 429 with `X-RateLimit-Global` and scope `global` when exhausted. */
  private takeGlobal(): void {
    const d = this.limiter.take('global', this.opts.globalLimit, this.opts.now());
    if (d.allowed) return;
    throw tooManyRequests(d.resetAfter, 'global');
  }

  private limitOf(route: CompiledRoute): Limit | false {
    return route.limit ? route.limit() : this.opts.routeLimit;
  }

  /** The route's bucket for its major parameter; its headers go on the answer whatever it is. */
  private takeBucket(
    route: CompiledRoute,
    params: Record<string, string>,
    headers: Record<string, string>,
  ): void {
    const limit = this.limitOf(route);
    if (limit === false) return;
    const d = this.limiter.take(
      `${route.bucket}:${majorParameter(route.path, params)}`,
      limit,
      this.opts.now(),
    );
    Object.assign(headers, rateLimitHeaders(route.bucket, d));
    if (!d.allowed) throw tooManyRequests(d.resetAfter, 'user');
  }
}

/** Discord buckets per channel, guild or webhook: the first of those in the path. */
function majorParameter(path: string, params: Record<string, string>): string {
  if (path.startsWith('/channels/')) return params.id ?? '';
  if (path.startsWith('/guilds/')) return params.guild ?? '';
  if (path.startsWith('/webhooks/')) return `${params.app ?? ''}/${params.token ?? ''}`;
  if (path.startsWith('/interactions/')) return params.id ?? '';
  if (path.startsWith('/applications/') && params.guild) return params.guild;
  return 'global';
}

function rateLimitHeaders(bucket: string, d: RateDecision): Record<string, string> {
  return {
    'x-ratelimit-limit': String(d.limit),
    'x-ratelimit-remaining': String(d.remaining),
    'x-ratelimit-reset': d.reset.toFixed(3),
    'x-ratelimit-reset-after': d.resetAfter.toFixed(3),
    'x-ratelimit-bucket': bucket,
  };
}

/** 429 as Discord sends it: `Retry-After` in whole seconds, the exact wait in the body. */
function tooManyRequests(retryAfterS: number, scope: 'user' | 'global' | 'shared'): HttpError {
  const headers: Record<string, string> = {
    'retry-after': String(Math.max(1, Math.ceil(retryAfterS))),
    'x-ratelimit-scope': scope,
  };
  if (scope === 'global') headers['x-ratelimit-global'] = 'true';
  return new HttpError(
    429,
    {
      message: 'You are being rate limited.',
      retry_after: Number(retryAfterS.toFixed(3)),
      global: scope === 'global',
    },
    headers,
  );
}

/** JSON, or multipart with `payload_json` and files (what discord.js sends with attachments). */
async function parseBody(
  raw: Buffer,
  contentType: string | undefined,
  now: () => number,
): Promise<{ body: unknown; files: APIAttachment[] }> {
  if (raw.length === 0) return { body: undefined, files: [] };
  if (contentType?.startsWith('multipart/form-data')) {
    const form = await new Response(raw, { headers: { 'content-type': contentType } }).formData();
    let body: unknown;
    const files: APIAttachment[] = [];
    for (const [key, value] of form.entries()) {
      if (key === 'payload_json' && typeof value === 'string') body = parseJson(value);
      else if (typeof value !== 'string') {
        const id = snowflake(now());
        files.push({
          id,
          filename: value.name,
          size: value.size,
          url: `https://cdn.discordapp.com/attachments/0/${id}/${encodeURIComponent(value.name)}`,
          proxy_url: `https://media.discordapp.net/attachments/0/${id}/${encodeURIComponent(value.name)}`,
          ...(value.type && { content_type: value.type }),
        });
      }
    }
    return { body, files };
  }
  return { body: parseJson(raw.toString('utf8')), files: [] };
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw DiscordErrors.invalidJson();
  }
}
