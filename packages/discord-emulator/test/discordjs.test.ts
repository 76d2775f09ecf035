import {
  ActionRowBuilder,
  ButtonBuilder,
  ButtonStyle,
  type Client,
  DiscordAPIError,
  Events,
  GatewayIntentBits,
  type Message,
  type TextChannel,
  type ThreadChannel,
} from 'discord.js';
import { afterEach, describe, expect, it } from 'vitest';
import { DiscordEmulator } from '../src/index.js';
import { connectClient, nextEvent } from './helpers.js';

let emu: DiscordEmulator | undefined;
let client: Client | undefined;

afterEach(async () => {
  // Destroy the client first: the emulator going away under it would make it reconnect.
  await client?.destroy();
  await emu?.stop();
  client = undefined;
  emu = undefined;
});

async function setup(options: ConstructorParameters<typeof DiscordEmulator>[0] = {}) {
  emu = new DiscordEmulator(options);
  await emu.start();
  const connected = await connectClient(emu);
  client = connected.client;
  const channel = (await client.channels.fetch(emu.defaultChannelId)) as TextChannel;
  return { emu, client, channel, readyMs: connected.readyMs };
}

describe('DiscordEmulator with a real discord.js client', () => {
  it('logs in and is ready within a second, with the emulated guild, channel and bot user cached', async () => {
    const { emu, client, readyMs } = await setup();
    console.log(`discord.js client ready after ${readyMs.toFixed(1)} ms`);
    expect(readyMs).toBeLessThan(1000);
    expect(client.user?.id).toBe(emu.botUser.id);
    expect(client.user?.bot).toBe(true);
    const guild = client.guilds.cache.get(emu.guildId);
    expect(guild?.available).toBe(true);
    expect(guild?.roles.everyone.id).toBe(emu.guildId);
    expect(guild?.members.me?.id).toBe(emu.botUser.id);
    expect(client.channels.cache.get(emu.defaultChannelId)?.isTextBased()).toBe(true);
    expect(emu.identifyCount).toBe(1);
    expect(emu.connectedClients).toBe(1);
    const application = await client.application!.fetch();
    expect(application.id).toBe(emu.applicationId);
    expect(emu.errors()).toEqual([]);
  });

  it('delivers a user message with its content, member roles and the bot mention', async () => {
    const { emu, client } = await setup();
    const role = emu.createRole('agents');
    const alice = emu.createUser('alice', { roles: [role] });
    const received = nextEvent(client, Events.MessageCreate, (m) => !m.author.bot);
    const sent = emu.userSays(emu.defaultChannelId, alice, 'hello there', { mentionBot: true });
    const [message] = await received;
    expect(message.id).toBe(sent.id);
    expect(message.content).toBe(`<@${emu.botUser.id}> hello there`);
    expect(message.mentions.users.has(emu.botUser.id)).toBe(true);
    expect(message.member?.roles.cache.has(role)).toBe(true);
    expect(message.author.username).toBe('alice');
  });

  it('stores a reply the client posts and echoes it back as MESSAGE_CREATE, pinging nobody', async () => {
    const { emu, client } = await setup();
    const alice = emu.createUser('alice');
    const received = nextEvent(client, Events.MessageCreate, (m) => !m.author.bot);
    emu.userSays(emu.defaultChannelId, alice, 'ping');
    const [message] = await received;
    const echoed = nextEvent(client, Events.MessageCreate, (m) => m.author.id === emu.botUser.id);
    const reply = await message.reply({
      content: `pong <@${alice.id}> @everyone`,
      allowedMentions: { parse: [] },
    });
    const [echo] = await echoed;
    expect(echo.id).toBe(reply.id);
    const stored = emu.channelMessages(emu.defaultChannelId).at(-1)!;
    expect(stored).toMatchObject({
      id: reply.id,
      content: `pong <@${alice.id}> @everyone`,
      type: 19,
      message_reference: { message_id: message.id },
      mentions: [],
      mention_everyone: false,
      allowed_mentions: { parse: [] },
    });
    expect(reply.reference?.messageId).toBe(message.id);
  });

  it('rejects a 2001-character message with 50035 and the form error, and accepts 2000', async () => {
    const { emu, channel } = await setup();
    const error = await channel.send('x'.repeat(2001)).catch((err: unknown) => err);
    expect(error).toBeInstanceOf(DiscordAPIError);
    expect((error as DiscordAPIError).code).toBe(50035);
    expect((error as DiscordAPIError).status).toBe(400);
    const [entry] = emu.errors();
    expect(entry).toMatchObject({
      route: 'POST /channels/:id/messages',
      status: 400,
      response: {
        code: 50035,
        message: 'Invalid Form Body',
        errors: { content: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH' }] } },
      },
    });
    const ok = await channel.send('y'.repeat(2000));
    expect(emu.channelMessages(emu.defaultChannelId).at(-1)?.id).toBe(ok.id);
  });

  it('starts a thread from a message (thread id = message id) and reports its archiving as threadUpdate', async () => {
    const { emu, client } = await setup();
    const alice = emu.createUser('alice');
    const received = nextEvent(client, Events.MessageCreate, (m) => !m.author.bot);
    emu.userSays(emu.defaultChannelId, alice, 'start a thread', { mentionBot: true });
    const [message] = await received;
    const created = nextEvent(client, Events.ThreadCreate);
    const thread = await message.startThread({ name: 'work', autoArchiveDuration: 1440 });
    const [createdThread, newlyCreated] = await created;
    expect(newlyCreated).toBe(true);
    expect(createdThread.id).toBe(message.id);
    expect(thread.id).toBe(message.id);
    expect(emu.thread(thread.id)).toMatchObject({
      type: 11,
      owner_id: emu.botUser.id,
      parent_id: emu.defaultChannelId,
    });

    const updated = nextEvent(client, Events.ThreadUpdate);
    emu.archiveThread(thread.id);
    const [before, after] = await updated;
    expect(before.archived).toBe(false);
    expect(after.archived).toBe(true);
    expect(emu.threads().find((t) => t.id === thread.id)).toMatchObject({
      thread_metadata: { archived: true },
    });
  });

  it('refuses edits and reactions in an archived thread (50083); a bot post reopens it and is counted', async () => {
    const { emu, channel } = await setup();
    const starter = await channel.send('starter');
    const thread = await starter.startThread({ name: 'later archived' });
    const botMessage = await thread.send('first');
    emu.archiveThread(thread.id);
    await emu.waitFor(() => (thread as ThreadChannel).archived, { what: 'the cached thread to be archived' });
    const editError = await botMessage.edit('changed').catch((err: unknown) => err);
    expect((editError as DiscordAPIError).code).toBe(50083);
    const reactError = await botMessage.react('✅').catch((err: unknown) => err);
    expect((reactError as DiscordAPIError).code).toBe(50083);
    expect(emu.unarchivedByBotPost).toBe(0);
    await thread.send('this reopens the thread');
    expect(emu.unarchivedByBotPost).toBe(1);
    expect(emu.thread(thread.id)).toMatchObject({ thread_metadata: { archived: false } });

    emu.archiveThread(thread.id, { locked: true });
    const lockedError = await thread.send('refused').catch((err: unknown) => err);
    expect((lockedError as DiscordAPIError).code).toBe(50083);
    expect(emu.unarchivedByBotPost).toBe(1);
  });

  it('reports a deleted thread as threadDelete; REST on it then answers 10003', async () => {
    const { emu, client, channel } = await setup();
    const starter = await channel.send('starter');
    const thread = await starter.startThread({ name: 'to delete' });
    const deleted = nextEvent(client, Events.ThreadDelete);
    emu.deleteThread(thread.id);
    const [gone] = await deleted;
    expect(gone.id).toBe(thread.id);
    const error = await client.rest
      .post(`/channels/${thread.id}/messages`, { body: { content: 'x' } })
      .catch((e) => e);
    expect((error as DiscordAPIError).code).toBe(10003);
    expect(emu.errors().at(-1)).toMatchObject({ status: 404, response: { code: 10003 } });
  });

  it('runs a slash command the client defers, edits and follows up', async () => {
    const { emu, client } = await setup();
    const alice = emu.createUser('alice');
    await client.application!.commands.set([{ name: 'status', description: 'Show status' }], emu.guildId);
    expect(emu.registeredCommands(emu.guildId).map((c) => c.name)).toEqual(['status']);
    client.on(Events.InteractionCreate, async (interaction) => {
      if (!interaction.isChatInputCommand()) return;
      await interaction.deferReply();
      await interaction.editReply({ content: `all good, ${interaction.user.username}` });
      await interaction.followUp({ content: 'and one more thing', flags: 64 });
    });
    const handle = emu.runCommand(emu.defaultChannelId, alice, 'status');
    const first = await handle.initialResponse;
    expect(first.type).toBe(5);
    await emu.waitFor(() => handle.followups().length === 1, { what: 'the follow-up' });
    expect(handle.original()).toMatchObject({ content: 'all good, alice', type: 20 });
    expect(handle.original()?.flags ?? 0).toBe(0);
    expect(handle.followups()[0]).toMatchObject({ content: 'and one more thing', flags: 64 });
    // The reply is a channel message; the ephemeral follow-up is not.
    const contents = emu.channelMessages(emu.defaultChannelId).map((m) => m.content);
    expect(contents).toContain('all good, alice');
    expect(contents).not.toContain('and one more thing');
    expect(emu.errors()).toEqual([]);
  });

  it('answers a first interaction response after the deadline with 10062', async () => {
    const { emu, client } = await setup({ interactionDeadlineMs: 150 });
    const alice = emu.createUser('alice');
    let handle: ReturnType<DiscordEmulator['runCommand']> | undefined;
    const replyError = new Promise<unknown>((resolve) => {
      client!.on(Events.InteractionCreate, async (interaction) => {
        if (!interaction.isChatInputCommand()) return;
        // Answer only once the emulator has given up on this interaction.
        await handle!.initialResponse.catch(() => {});
        resolve(await interaction.reply({ content: 'too late' }).catch((err: unknown) => err));
      });
    });
    handle = emu.runCommand(emu.defaultChannelId, alice, 'slow');
    await expect(handle.initialResponse).rejects.toThrow(/within 150 ms/);
    const error = await replyError;
    expect((error as DiscordAPIError).code).toBe(10062);
    expect(emu.errors()).toMatchObject([
      { route: 'POST /interactions/:id/:token/callback', status: 404, response: { code: 10062 } },
    ]);
  });

  it('round-trips a button press: the client updates the message it was on', async () => {
    const { emu, client, channel } = await setup();
    const alice = emu.createUser('alice');
    const row = new ActionRowBuilder<ButtonBuilder>().addComponents(
      new ButtonBuilder().setCustomId('approve').setLabel('Approve').setStyle(ButtonStyle.Success),
    );
    const prompt = await channel.send({ content: 'Approve?', components: [row] });
    expect(emu.channelMessages(emu.defaultChannelId).at(-1)?.components).toMatchObject([
      { type: 1, components: [{ type: 2, custom_id: 'approve', label: 'Approve' }] },
    ]);
    client.on(Events.InteractionCreate, async (interaction) => {
      if (!interaction.isButton()) return;
      await interaction.update({ content: `approved by ${interaction.user.username}`, components: [] });
    });
    const updated = nextEvent(client, Events.MessageUpdate, (_old, m) => m.id === prompt.id);
    const press = emu.pressButton(emu.defaultChannelId, prompt.id, 'approve', alice);
    expect((await press.initialResponse).type).toBe(7);
    const [, after] = await updated;
    expect((after as Message).content).toBe('approved by alice');
    expect(emu.channelMessages(emu.defaultChannelId).find((m) => m.id === prompt.id)).toMatchObject({
      content: 'approved by alice',
      components: [],
    });
    expect(press.original()?.id).toBe(prompt.id);
  });

  it("delivers a user message's attachments and serves their bytes on 127.0.0.1, logging each download", async () => {
    const { emu, client } = await setup();
    const alice = emu.createUser('alice');
    const received = nextEvent(client, Events.MessageCreate, (m) => !m.author.bot);
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 1, 2, 3]);
    emu.userSays(emu.defaultChannelId, alice, '', {
      attachments: [
        { name: 'message.txt', data: 'a long paste', contentType: 'text/plain; charset=utf-8' },
        { name: 'shot one.png', data: png, contentType: 'image/png' },
        { name: 'gone.log', data: 'x', status: 404 },
        { name: 'liar.txt', data: 'x'.repeat(5000), size: 10 },
      ],
    });
    const [message] = await received;
    expect(message.content).toBe('');
    const atts = [...message.attachments.values()];
    expect(atts.map((a) => [a.name, a.size, a.contentType])).toEqual([
      ['message.txt', 12, 'text/plain; charset=utf-8'],
      ['shot one.png', 7, 'image/png'],
      ['gone.log', 1, null],
      ['liar.txt', 10, null],
    ]);
    for (const a of atts) expect(new URL(a.url).hostname).toBe('127.0.0.1');
    const paste = await fetch(atts[0]!.url);
    expect(paste.headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect(await paste.text()).toBe('a long paste');
    expect(new Uint8Array(await (await fetch(atts[1]!.url)).arrayBuffer())).toEqual(png);
    expect((await fetch(atts[2]!.url)).status).toBe(404);
    expect((await (await fetch(atts[3]!.url)).text()).length).toBe(5000);
    expect(emu.attachmentDownloads.map((d) => [d.status, d.bytes])).toEqual([
      [200, 12],
      [200, 7],
      [404, 0],
      [200, 5000],
    ]);
    expect(emu.errors()).toEqual([]);
  });

  it('holds an attachment download until the test lets it go', async () => {
    const { emu } = await setup();
    const alice = emu.createUser('alice');
    let release!: () => void;
    const hold = new Promise<void>((r) => {
      release = r;
    });
    const sent = emu.userSays(emu.defaultChannelId, alice, 'slow file', {
      attachments: [{ name: 'slow.txt', data: 'at last', hold }],
    });
    const download = fetch(sent.attachments[0]!.url).then((r) => r.text());
    await emu.waitFor(() => emu.attachmentRequests.length === 1, { what: 'the request to arrive' });
    expect(emu.attachmentDownloads).toEqual([]);
    release();
    expect(await download).toBe('at last');
    expect(emu.attachmentDownloads).toEqual([expect.objectContaining({ status: 200, bytes: 7 })]);
  });

  it('runs autocomplete: the focused option reaches the client and its choices reach the test', async () => {
    const { emu, client } = await setup();
    const alice = emu.createUser('alice');
    await client.application!.commands.set(
      [
        {
          name: 'model',
          description: 'Pick a model',
          options: [{ name: 'name', description: 'model', type: 3, required: true, autocomplete: true }],
        },
      ],
      emu.guildId,
    );
    let many = false;
    client.on(Events.InteractionCreate, async (interaction) => {
      if (!interaction.isAutocomplete()) return;
      const focused = interaction.options.getFocused(true);
      const choices = many
        ? Array.from({ length: 26 }, (_, i) => ({ name: `m${i}`, value: `m${i}` }))
        : [{ name: `${interaction.commandName}:${focused.name}=${focused.value}`, value: 'auto' }];
      await interaction.respond(choices).catch(() => {});
    });
    const handle = emu.autocomplete(emu.defaultChannelId, alice, 'model', 'name', 'cla');
    expect(await handle.initialResponse).toEqual({
      type: 8,
      data: { choices: [{ name: 'model:name=cla', value: 'auto' }] },
    });
    expect(handle.original()).toBeUndefined();
    many = true;
    emu.autocomplete(emu.defaultChannelId, alice, 'model', 'name', '');
    await emu.waitFor(() => emu.errors().length === 1, { what: 'the 26-choice answer refused' });
    expect(emu.errors()).toMatchObject([
      { route: 'POST /interactions/:id/:token/callback', status: 400, response: { code: 50035 } },
    ]);
  });

  it('makes discord.js wait on the headers: 6 fast sends to one channel produce no 429', async () => {
    const { emu, channel } = await setup();
    const sent = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => channel.send(`burst ${i}`)));
    expect(sent).toHaveLength(6);
    expect(emu.rateLimited()).toEqual([]);
    const posts = emu.requestLog.filter((e) => e.route === 'POST /channels/:id/messages');
    expect(posts.map((e) => e.status)).toEqual([200, 200, 200, 200, 200, 200]);
    // The sixth waited for the 5-second window to pass.
    expect(posts[5]!.at - posts[0]!.at).toBeGreaterThanOrEqual(4900);
  });

  it.each([4000, 1006])(
    'reconnects after the gateway drops (%i) and still receives the next message',
    async (code) => {
      const { emu, client } = await setup();
      const alice = emu.createUser('alice');
      const resumedOrReady = nextEvent(client, Events.ShardReady, () => true, 8000);
      emu.dropConnections(code);
      await resumedOrReady;
      expect(emu.identifyCount).toBe(2);
      expect(emu.connectedClients).toBe(1);
      const received = nextEvent(client, Events.MessageCreate, (m) => !m.author.bot);
      emu.userSays(emu.defaultChannelId, alice, 'are you still there?');
      const [message] = await received;
      expect(message.content).toBe('are you still there?');
    },
  );

  it('holdGateway: a discord.js destroy() does not finish while the gateway is silent, and does once it is released', async () => {
    const { emu, client: c } = await setup();
    emu.holdGateway();
    let destroyed = false;
    const destroying = c.destroy().then(() => {
      destroyed = true;
    });
    client = undefined;
    // A REST round trip on loopback, far longer than answering a close frame takes: still unanswered.
    expect((await fetch(`${emu.apiBase}/v10/gateway`)).status).toBe(200);
    expect(destroyed).toBe(false);
    expect(emu.connectedClients).toBe(1);
    emu.releaseGateway();
    await destroying;
    await emu.waitFor(() => emu.connectedClients === 0, { what: 'the socket to close' });
  });

  it('does not send message content without the MESSAGE_CONTENT intent, except when the bot is mentioned', async () => {
    emu = new DiscordEmulator();
    await emu.start();
    const intents = [GatewayIntentBits.Guilds, GatewayIntentBits.GuildMessages];
    client = (await connectClient(emu, { intents })).client;
    const alice = emu.createUser('alice');
    const plain = nextEvent(client, Events.MessageCreate, (m) => !m.author.bot);
    emu.userSays(emu.defaultChannelId, alice, 'secret');
    expect((await plain)[0].content).toBe('');
    const mention = nextEvent(client, Events.MessageCreate, (m) => !m.author.bot);
    emu.userSays(emu.defaultChannelId, alice, 'visible', { mentionBot: true });
    expect((await mention)[0].content).toBe(`<@${emu.botUser.id}> visible`);
  });

  it('stop() is idempotent and leaves no open sockets or servers behind', async () => {
    const tcpHandles = () =>
      process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap' || r === 'TCPServerWrap').length;
    const before = tcpHandles();
    const { emu: e, client: c, channel } = await setup();
    await channel.send('one request so HTTP keep-alive sockets exist');
    expect(tcpHandles()).toBeGreaterThan(before);
    await c.destroy();
    client = undefined;
    const first = e.stop();
    expect(e.stop()).toBe(first);
    await first;
    await e.stop();
    await expect(fetch(`${e.apiBase}/v10/gateway`)).rejects.toThrow();
    await e.waitFor(() => tcpHandles() <= before, { timeoutMs: 2000, what: 'every TCP handle to close' });
  });
});
