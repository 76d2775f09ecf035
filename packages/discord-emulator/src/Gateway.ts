import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import {
  type APIGuildMember,
  type APIUser,
  GatewayCloseCodes,
  GatewayIntentBits,
  GatewayOpcodes,
} from 'discord-api-types/v10';
import { type RawData, type WebSocket, WebSocketServer } from 'ws';
import type { EmulatorLogger } from './EmulatorLogger.js';

/** Intents Discord only grants when enabled for the application. */
export const PRIVILEGED_INTENTS =
  GatewayIntentBits.GuildMembers | GatewayIntentBits.GuildPresences | GatewayIntentBits.MessageContent;

/** Every intent bit defined by Discord; IDENTIFY with another bit is closed with 4013. */
const ALL_INTENTS = Object.values(GatewayIntentBits)
  .filter((v): v is number => typeof v === 'number')
  .reduce((a, b) => a | b, 0);

/** The intent a connection needs to receive a dispatch; events not listed go to every identified connection. */
const REQUIRED_INTENT: Readonly<Record<string, number>> = {
  GUILD_ROLE_CREATE: GatewayIntentBits.Guilds,
  GUILD_MEMBER_ADD: GatewayIntentBits.GuildMembers,
  CHANNEL_CREATE: GatewayIntentBits.Guilds,
  CHANNEL_UPDATE: GatewayIntentBits.Guilds,
  CHANNEL_DELETE: GatewayIntentBits.Guilds,
  THREAD_CREATE: GatewayIntentBits.Guilds,
  THREAD_UPDATE: GatewayIntentBits.Guilds,
  THREAD_DELETE: GatewayIntentBits.Guilds,
  THREAD_LIST_SYNC: GatewayIntentBits.Guilds,
  THREAD_MEMBER_UPDATE: GatewayIntentBits.Guilds,
  MESSAGE_CREATE: GatewayIntentBits.GuildMessages,
  MESSAGE_UPDATE: GatewayIntentBits.GuildMessages,
  MESSAGE_DELETE: GatewayIntentBits.GuildMessages,
  MESSAGE_REACTION_ADD: GatewayIntentBits.GuildMessageReactions,
  MESSAGE_REACTION_REMOVE: GatewayIntentBits.GuildMessageReactions,
  TYPING_START: GatewayIntentBits.GuildMessageTyping,
};

/** Close codes `ws` may not send in a close frame; such a "close" is an abrupt end of the TCP connection. */
const UNSENDABLE_CLOSE_CODES = new Set([1004, 1005, 1006, 1015]);

export interface GatewayOptions {
  readonly token: string;
  /** Privileged intents granted to the application. */
  readonly intentsAllowed: number;
  readonly heartbeatIntervalMs: number;
  readonly botUser: APIUser;
  readonly applicationId: string;
  readonly guildId: string;
  /** `ws://127.0.0.1:PORT`, sent as `resume_gateway_url`. */
  readonly url: () => string;
  /** GUILD_CREATE data, built at each IDENTIFY. */
  readonly guildCreate: () => unknown;
  /** Members for REQUEST_GUILD_MEMBERS (op 8). */
  readonly members: () => APIGuildMember[];
  readonly logger: EmulatorLogger;
}

interface Connection {
  readonly socket: WebSocket;
  readonly id: number;
  identified: boolean;
  intents: number;
  seq: number;
}

interface Packet {
  op?: unknown;
  d?: unknown;
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Discord's JSON gateway for one shard: HELLO, IDENTIFY → READY + GUILD_CREATE, heartbeats, RESUME → op 9
 * `false` (sessions are not resumable), dispatches with an increasing `s` to identified connections, filtered by
 * their intents. Only text frames are sent; transport compression and ETF are refused.
 */
export class Gateway {
  /** Successful IDENTIFYs since start. */
  identifyCount = 0;
  /** RESUMEs received (each answered with op 9 `false`). */
  resumeCount = 0;
  private readonly wss = new WebSocketServer({ noServer: true });
  private readonly connections = new Set<Connection>();
  private nextId = 0;
  private held = false;

  constructor(private readonly opts: GatewayOptions) {}

  /** Identified connections that are still open. */
  get connectedClients(): number {
    let n = 0;
    for (const c of this.connections) if (c.identified && c.socket.readyState === c.socket.OPEN) n++;
    return n;
  }

  /** Takes over an HTTP upgrade request; `?v=10&encoding=json` is accepted, other versions or encodings not. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const query = new URL(req.url ?? '/', 'ws://127.0.0.1').searchParams;
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      const v = query.get('v');
      const encoding = query.get('encoding');
      if (v !== null && v !== '10') {
        ws.close(GatewayCloseCodes.InvalidAPIVersion, 'Invalid API version');
        return;
      }
      if ((encoding !== null && encoding !== 'json') || query.has('compress')) {
        this.opts.logger.warn({ query: query.toString() }, 'emulator gateway: only uncompressed JSON');
        ws.close(GatewayCloseCodes.DecodeError, 'The emulator speaks uncompressed JSON only');
        return;
      }
      this.onConnection(ws);
    });
  }

  /**
   * Sends a dispatch to every identified connection holding the intent it needs. Without MESSAGE_CONTENT a
   * message's content, embeds, attachments and components arrive empty, unless the bot wrote it or it mentions
   * the bot. `raw` skips both filters (for malformed-payload tests).
   */
  dispatch(t: string, d: unknown, opts: { raw?: boolean } = {}): void {
    for (const c of this.connections) {
      if (!c.identified) continue;
      if (opts.raw) {
        this.send(c, t, d);
        continue;
      }
      const needed = REQUIRED_INTENT[t];
      if (needed !== undefined && (c.intents & needed) === 0) continue;
      this.send(c, t, this.withoutHiddenContent(c, t, d));
    }
  }

  /**
   * Ends every connection. A code `ws` cannot put in a close frame (1006 and the like) cuts the TCP connection,
   * which is what an abnormal closure looks like to the client.
   */
  dropConnections(code = GatewayCloseCodes.UnknownError): void {
    for (const c of this.connections) {
      this.opts.logger.info({ connection: c.id, code }, 'emulator gateway: dropping connection');
      if (UNSENDABLE_CLOSE_CODES.has(code) || code < 1000) c.socket.terminate();
      else c.socket.close(code, 'emulator dropped the connection');
    }
  }

  /**
   * Stops (or, with `false`, resumes) reading every connection, open or opened later; TCP stays up. Nothing the
   * client sends is answered meanwhile, its close frame included: a gateway that went silent.
   */
  hold(held: boolean): void {
    this.held = held;
    for (const c of this.connections) {
      if (held) c.socket.pause();
      else c.socket.resume();
    }
  }

  /** Terminates every socket and closes the WebSocket server. */
  async close(): Promise<void> {
    for (const c of this.connections) c.socket.terminate();
    this.connections.clear();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
  }

  private onConnection(socket: WebSocket): void {
    const connection: Connection = { socket, id: ++this.nextId, identified: false, intents: 0, seq: 0 };
    this.connections.add(connection);
    socket.on('close', (code) => {
      this.connections.delete(connection);
      this.opts.logger.debug({ connection: connection.id, code }, 'emulator gateway: closed');
    });
    socket.on('error', (err) => {
      this.connections.delete(connection);
      this.opts.logger.warn({ connection: connection.id, err }, 'emulator gateway: socket error');
    });
    socket.on('message', (raw, isBinary) => this.onFrame(connection, raw, isBinary));
    this.sendOp(connection, GatewayOpcodes.Hello, { heartbeat_interval: this.opts.heartbeatIntervalMs });
    if (this.held) socket.pause();
  }

  private onFrame(c: Connection, raw: RawData, isBinary: boolean): void {
    let packet: Packet;
    try {
      if (isBinary) throw new Error('binary frame');
      packet = JSON.parse(rawText(raw)) as Packet;
      if (!isRecord(packet)) throw new Error('not an object');
    } catch {
      c.socket.close(GatewayCloseCodes.DecodeError, 'Error while decoding payload.');
      return;
    }
    switch (packet.op) {
      case GatewayOpcodes.Heartbeat:
        this.sendOp(c, GatewayOpcodes.HeartbeatAck, undefined);
        return;
      case GatewayOpcodes.Identify:
        this.identify(c, isRecord(packet.d) ? packet.d : {});
        return;
      case GatewayOpcodes.Resume:
        // Sessions are not kept: the client must identify again, and gets READY and GUILD_CREATE anew.
        this.resumeCount++;
        this.sendOp(c, GatewayOpcodes.InvalidSession, false);
        return;
      case GatewayOpcodes.RequestGuildMembers:
        if (!this.requireIdentified(c)) return;
        this.requestMembers(c, isRecord(packet.d) ? packet.d : {});
        return;
      case GatewayOpcodes.PresenceUpdate:
      case GatewayOpcodes.VoiceStateUpdate:
      case GatewayOpcodes.RequestSoundboardSounds:
        this.requireIdentified(c);
        return;
      default:
        c.socket.close(GatewayCloseCodes.UnknownOpcode, 'Unknown opcode.');
    }
  }

  private requireIdentified(c: Connection): boolean {
    if (!c.identified) c.socket.close(GatewayCloseCodes.NotAuthenticated, 'Not authenticated.');
    return c.identified;
  }

  private identify(c: Connection, d: Record<string, unknown>): void {
    if (c.identified) {
      c.socket.close(GatewayCloseCodes.AlreadyAuthenticated, 'Already authenticated.');
      return;
    }
    if (d.token !== this.opts.token && d.token !== `Bot ${this.opts.token}`) {
      c.socket.close(GatewayCloseCodes.AuthenticationFailed, 'Authentication failed.');
      return;
    }
    const intents = d.intents;
    if (typeof intents !== 'number' || !Number.isInteger(intents) || (intents & ~ALL_INTENTS) !== 0) {
      c.socket.close(GatewayCloseCodes.InvalidIntents, 'Invalid intent(s).');
      return;
    }
    if ((intents & PRIVILEGED_INTENTS & ~this.opts.intentsAllowed) !== 0) {
      c.socket.close(GatewayCloseCodes.DisallowedIntents, 'Disallowed intent(s).');
      return;
    }
    c.identified = true;
    c.intents = intents;
    this.identifyCount++;
    this.opts.logger.debug({ connection: c.id, intents }, 'emulator gateway: identified');
    this.send(c, 'READY', {
      v: 10,
      user: this.opts.botUser,
      guilds: [{ id: this.opts.guildId, unavailable: true }],
      session_id: `emulator-session-${c.id}`,
      resume_gateway_url: this.opts.url(),
      shard: [0, 1],
      application: { id: this.opts.applicationId, flags: 0 },
      user_settings: {},
      private_channels: [],
      presences: [],
      relationships: [],
      guild_join_requests: [],
      geo_ordered_rtc_regions: [],
    });
    this.send(c, 'GUILD_CREATE', this.opts.guildCreate());
  }

  /** Answers op 8 with one GUILD_MEMBERS_CHUNK: every member, or those in `user_ids`. */
  private requestMembers(c: Connection, d: Record<string, unknown>): void {
    const wanted = Array.isArray(d.user_ids)
      ? d.user_ids.map(String)
      : typeof d.user_ids === 'string'
        ? [d.user_ids]
        : undefined;
    const query = typeof d.query === 'string' ? d.query.toLowerCase() : '';
    const limit = typeof d.limit === 'number' && d.limit > 0 ? d.limit : Number.POSITIVE_INFINITY;
    const members = this.opts
      .members()
      .filter((m) => (wanted ? wanted.includes(m.user.id) : m.user.username.toLowerCase().startsWith(query)))
      .slice(0, limit);
    this.send(c, 'GUILD_MEMBERS_CHUNK', {
      guild_id: this.opts.guildId,
      members,
      chunk_index: 0,
      chunk_count: 1,
      ...(d.nonce !== undefined && { nonce: d.nonce }),
      ...(wanted && { not_found: wanted.filter((id) => !members.some((m) => m.user.id === id)) }),
    });
  }

  private withoutHiddenContent(c: Connection, t: string, d: unknown): unknown {
    if (t !== 'MESSAGE_CREATE' && t !== 'MESSAGE_UPDATE') return d;
    if ((c.intents & GatewayIntentBits.MessageContent) !== 0 || !isRecord(d)) return d;
    const botId = this.opts.botUser.id;
    const author = isRecord(d.author) ? d.author.id : undefined;
    const mentions = Array.isArray(d.mentions) ? d.mentions : [];
    if (author === botId || mentions.some((u) => isRecord(u) && u.id === botId)) return d;
    return { ...d, content: '', embeds: [], attachments: [], components: [] };
  }

  private send(c: Connection, t: string, d: unknown): void {
    if (c.socket.readyState !== c.socket.OPEN) return;
    c.seq++;
    c.socket.send(JSON.stringify({ op: GatewayOpcodes.Dispatch, t, s: c.seq, d }));
  }

  private sendOp(c: Connection, op: GatewayOpcodes, d: unknown): void {
    if (c.socket.readyState !== c.socket.OPEN) return;
    c.socket.send(JSON.stringify({ op, d: d ?? null, s: null, t: null }));
  }
}

function rawText(raw: RawData): string {
  if (Array.isArray(raw)) return Buffer.concat(raw).toString('utf8');
  if (raw instanceof ArrayBuffer) return Buffer.from(raw).toString('utf8');
  return raw.toString('utf8');
}
