import { GatewayIntentBits } from 'discord-api-types/v10';
import { afterEach, describe, expect, it } from 'vitest';
import { DiscordEmulator, type EmulatorOptions } from '../src/index.js';
import { RawGateway } from './helpers.js';

let emu: DiscordEmulator | undefined;
const sockets: RawGateway[] = [];

afterEach(async () => {
  for (const s of sockets.splice(0)) s.close();
  await emu?.stop();
  emu = undefined;
});

async function start(options: EmulatorOptions = {}): Promise<DiscordEmulator> {
  emu = new DiscordEmulator({ heartbeatIntervalMs: 60_000, ...options });
  await emu.start();
  return emu;
}

function open(e: DiscordEmulator, query?: string): RawGateway {
  const g = new RawGateway(e, query);
  sockets.push(g);
  return g;
}

const BOT_INTENTS =
  GatewayIntentBits.Guilds | GatewayIntentBits.GuildMessages | GatewayIntentBits.MessageContent;

describe('emulator gateway', () => {
  it('says HELLO, then answers IDENTIFY with READY and one GUILD_CREATE, with increasing sequence numbers', async () => {
    const e = await start();
    const alice = e.createUser('alice');
    const active = e.createThread(e.defaultChannelId, 'active', alice.id);
    const archived = e.createThread(e.defaultChannelId, 'archived', alice.id, { archived: true });
    const g = open(e);
    await e.waitFor(() => g.frames[0], { what: 'HELLO' });
    expect(g.frames[0]).toMatchObject({ op: 10, d: { heartbeat_interval: 60_000 } });
    g.identify(e, BOT_INTENTS);
    const guild = await e.waitFor(() => g.dispatches('GUILD_CREATE')[0], { what: 'GUILD_CREATE' });
    const ready = g.dispatches('READY')[0]!;
    expect(ready.s).toBe(1);
    expect(guild.s).toBe(2);
    expect(ready.d).toMatchObject({
      v: 10,
      user: { id: e.botUser.id, bot: true, discriminator: '0', avatar: null },
      guilds: [{ id: e.guildId, unavailable: true }],
      resume_gateway_url: `ws://127.0.0.1:${e.port}`,
      application: { id: e.applicationId, flags: 0 },
    });
    const d = guild.d as {
      id: string;
      roles: { id: string; name: string }[];
      members: { user: { id: string } }[];
      channels: { id: string }[];
      threads: { id: string }[];
      unavailable: boolean;
      joined_at: string;
    };
    expect(d.id).toBe(e.guildId);
    expect(d.unavailable).toBe(false);
    expect(d.roles).toContainEqual(expect.objectContaining({ id: e.guildId, name: '@everyone' }));
    expect(d.members.map((m) => m.user.id)).toContain(e.botUser.id);
    expect(d.channels.map((c) => c.id)).toEqual([e.defaultChannelId]);
    expect(d.threads.map((t) => t.id)).toEqual([active]);
    expect(d.threads.map((t) => t.id)).not.toContain(archived);
    expect(e.identifyCount).toBe(1);
    expect(e.connectedClients).toBe(1);

    e.userSays(e.defaultChannelId, alice, 'numbered');
    const created = await e.waitFor(() => g.dispatches('MESSAGE_CREATE')[0], { what: 'MESSAGE_CREATE' });
    expect(created.s).toBe(3);
    expect(created.d).toMatchObject({
      channel_id: e.defaultChannelId,
      guild_id: e.guildId,
      channel_type: 0,
      content: 'numbered',
      member: { roles: [] },
      mentions: [],
      edited_timestamp: null,
      type: 0,
      components: [],
    });
  });

  it('acknowledges heartbeats and answers RESUME with op 9 false', async () => {
    const e = await start();
    const g = open(e);
    await e.waitFor(() => g.frames[0], { what: 'HELLO' });
    g.send({ op: 1, d: null });
    await e.waitFor(() => g.frames.find((f) => f.op === 11), { what: 'HEARTBEAT_ACK' });
    g.send({ op: 6, d: { token: e.botToken, session_id: 'old', seq: 5 } });
    const invalid = await e.waitFor(() => g.frames.find((f) => f.op === 9), { what: 'INVALID_SESSION' });
    expect(invalid.d).toBe(false);
  });

  it.each([
    ['a wrong token', {}, (g: RawGateway, e: DiscordEmulator) => g.identify(e, BOT_INTENTS, 'nope'), 4004],
    [
      'a privileged intent not granted',
      { intentsAllowed: 0 },
      (g: RawGateway, e: DiscordEmulator) => g.identify(e, BOT_INTENTS),
      4014,
    ],
    ['an unknown intent bit', {}, (g: RawGateway, e: DiscordEmulator) => g.identify(e, 1 << 30), 4013],
    ['a frame that is not JSON', {}, (g: RawGateway) => g.sendBinary(Buffer.from([0x83, 0x01])), 4002],
    ['an unknown opcode', {}, (g: RawGateway) => g.send({ op: 99, d: null }), 4001],
    ['a presence update before IDENTIFY', {}, (g: RawGateway) => g.send({ op: 3, d: {} }), 4003],
  ] as const)('closes the connection on %s', async (_what, options, act, code) => {
    const e = await start(options);
    const g = open(e);
    await e.waitFor(() => g.frames[0], { what: 'HELLO' });
    act(g, e);
    await e.waitFor(() => g.closeCode, { what: `close ${code}` });
    expect(g.closeCode).toBe(code);
    expect(e.identifyCount).toBe(0);
  });

  it('refuses other API versions and compressed or ETF encodings', async () => {
    const e = await start();
    const v9 = open(e, '?v=9&encoding=json');
    const etf = open(e, '?v=10&encoding=etf');
    const zlib = open(e, '?v=10&encoding=json&compress=zlib-stream');
    await e.waitFor(() => v9.closeCode && etf.closeCode && zlib.closeCode, { what: 'three closes' });
    expect([v9.closeCode, etf.closeCode, zlib.closeCode]).toEqual([4012, 4002, 4002]);
  });

  it('sends only text frames, and dispatches only to identified connections holding the intent', async () => {
    const e = await start();
    const alice = e.createUser('alice');
    const identified = open(e);
    const threadsOnly = open(e);
    const silent = open(e);
    await e.waitFor(() => identified.frames[0] && threadsOnly.frames[0] && silent.frames[0], {
      what: 'HELLOs',
    });
    identified.identify(e, BOT_INTENTS);
    threadsOnly.identify(e, GatewayIntentBits.Guilds);
    await e.waitFor(() => e.connectedClients === 2, { what: 'two identified clients' });
    e.userSays(e.defaultChannelId, alice, 'only for message readers');
    e.createThread(e.defaultChannelId, 'for everyone with GUILDS', alice.id);
    await e.waitFor(() => threadsOnly.dispatches('THREAD_CREATE')[0], { what: 'THREAD_CREATE' });
    await e.waitFor(() => identified.dispatches('THREAD_CREATE')[0], { what: 'THREAD_CREATE' });
    expect(identified.dispatches('MESSAGE_CREATE')).toHaveLength(1);
    expect(threadsOnly.dispatches('MESSAGE_CREATE')).toHaveLength(0);
    expect(silent.frames.map((f) => f.op)).toEqual([10]);
    expect(identified.binaryFrames + threadsOnly.binaryFrames + silent.binaryFrames).toBe(0);
  });

  it('answers REQUEST_GUILD_MEMBERS with one chunk', async () => {
    const e = await start();
    const alice = e.createUser('alice');
    const g = open(e);
    await e.waitFor(() => g.frames[0], { what: 'HELLO' });
    g.identify(e, BOT_INTENTS | GatewayIntentBits.GuildMembers);
    await e.waitFor(() => g.dispatches('GUILD_CREATE')[0], { what: 'GUILD_CREATE' });
    g.send({ op: 8, d: { guild_id: e.guildId, user_ids: [alice.id], nonce: 'n1' } });
    const chunk = await e.waitFor(() => g.dispatches('GUILD_MEMBERS_CHUNK')[0], { what: 'the chunk' });
    expect(chunk.d).toMatchObject({
      nonce: 'n1',
      chunk_index: 0,
      chunk_count: 1,
      members: [{ user: { id: alice.id } }],
    });
  });

  it('waitFor names what it waited for when the cap passes', async () => {
    const e = await start();
    await expect(e.waitFor(() => false, { timeoutMs: 30, what: 'the impossible' })).rejects.toThrow(
      /timed out after 30 ms waiting for the impossible/,
    );
  });
});
