import { Client, type ClientEvents, Events, GatewayIntentBits, Partials } from 'discord.js';
import WebSocket from 'ws';
import type { DiscordEmulator } from '../src/index.js';

/** A no-op identify throttler: without it a re-identify waits about 5 s. */
export const NO_IDENTIFY_THROTTLE = {
  buildIdentifyThrottler: async () => ({ waitForIdentify: async () => {} }),
};

/** A real discord.js client against the emulator, logged in and ready within `capMs`. */
export async function connectClient(
  emu: DiscordEmulator,
  opts: { intents?: GatewayIntentBits[]; capMs?: number; token?: string } = {},
): Promise<{ client: Client; readyMs: number }> {
  const client = new Client({
    intents: opts.intents ?? [
      GatewayIntentBits.Guilds,
      GatewayIntentBits.GuildMessages,
      GatewayIntentBits.MessageContent,
    ],
    partials: [Partials.Channel, Partials.Message],
    rest: { api: emu.apiBase },
    ws: NO_IDENTIFY_THROTTLE,
  });
  const t0 = performance.now();
  const ready = nextEvent(client, Events.ClientReady, () => true, opts.capMs ?? 5000);
  try {
    await client.login(opts.token ?? emu.botToken);
    await ready;
  } catch (err) {
    await client.destroy();
    throw err;
  }
  return { client, readyMs: performance.now() - t0 };
}

/** The next `event` whose arguments pass `filter`, or a rejection naming the event after `capMs`. */
export function nextEvent<E extends keyof ClientEvents>(
  client: Client,
  event: E,
  filter: (...args: ClientEvents[E]) => boolean = () => true,
  capMs = 5000,
): Promise<ClientEvents[E]> {
  return new Promise((resolve, reject) => {
    const listener = (...args: ClientEvents[E]) => {
      if (!filter(...args)) return;
      clearTimeout(timer);
      client.off(event, listener);
      resolve(args);
    };
    const timer = setTimeout(() => {
      client.off(event, listener);
      reject(new Error(`no ${String(event)} event within ${capMs} ms`));
    }, capMs);
    client.on(event, listener);
  });
}

export interface RawResponse {
  readonly status: number;
  readonly headers: Headers;
  readonly json: unknown;
}

/** A raw REST call that ignores rate-limit headers, as a careless client would. */
export async function rest(
  emu: DiscordEmulator,
  method: string,
  path: string,
  body?: unknown,
  opts: { token?: string | null } = {},
): Promise<RawResponse> {
  const headers: Record<string, string> = {};
  const token = opts.token === undefined ? emu.botToken : opts.token;
  if (token !== null) headers.authorization = `Bot ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(`${emu.apiBase}/v10${path}`, {
    method,
    headers,
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? (JSON.parse(text) as unknown) : undefined };
}

/** A gateway frame as received. */
export interface Frame {
  op: number;
  d: unknown;
  s: number | null;
  t: string | null;
}

/** A bare WebSocket gateway client that records frames and its close code. */
export class RawGateway {
  readonly frames: Frame[] = [];
  /** Frames that came as binary (the emulator must send none). */
  binaryFrames = 0;
  closeCode: number | undefined;
  private readonly socket: WebSocket;

  constructor(emu: DiscordEmulator, query = '?v=10&encoding=json') {
    this.socket = new WebSocket(`${emu.gatewayUrl}${query}`);
    this.socket.on('message', (data, isBinary) => {
      if (isBinary) this.binaryFrames++;
      this.frames.push(JSON.parse(String(data)) as Frame);
    });
    this.socket.on('close', (code) => {
      this.closeCode = code;
    });
  }

  send(payload: unknown): void {
    this.socket.send(JSON.stringify(payload));
  }

  sendBinary(data: Buffer): void {
    this.socket.send(data);
  }

  identify(emu: DiscordEmulator, intents: number, token = emu.botToken): void {
    this.send({ op: 2, d: { token, intents, properties: { os: 'linux', browser: 'test', device: 'test' } } });
  }

  dispatches(t: string): Frame[] {
    return this.frames.filter((f) => f.op === 0 && f.t === t);
  }

  close(): void {
    this.socket.terminate();
  }
}
