import { afterEach, describe, expect, it } from 'vitest';
import { DiscordEmulator, type EmulatorOptions } from '../src/index.js';
import { rest } from './helpers.js';

let emu: DiscordEmulator | undefined;

afterEach(async () => {
  await emu?.stop();
  emu = undefined;
});

async function start(options: EmulatorOptions = {}): Promise<DiscordEmulator> {
  emu = new DiscordEmulator(options);
  await emu.start();
  return emu;
}

/** A clock the test moves by hand, so deadlines pass without sleeping. */
function manualClock() {
  let now = Date.now();
  return {
    now: () => now,
    advance(ms: number) {
      now += ms;
    },
  };
}

describe('emulator REST', () => {
  it('answers gateway discovery with a query-less ws URL and a session start limit', async () => {
    const e = await start();
    const res = await rest(e, 'GET', '/gateway/bot');
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/json');
    expect(res.json).toEqual({
      url: `ws://127.0.0.1:${e.port}`,
      shards: 1,
      session_start_limit: { total: 1000, remaining: 999, reset_after: 14_400_000, max_concurrency: 1 },
    });
    expect(e.apiBase).toBe(`http://127.0.0.1:${e.port}/api`);
  });

  it('answers 401 to a wrong token and 404 with code 0 to an unknown route, logging both', async () => {
    const e = await start({ botToken: 'right' });
    expect((await rest(e, 'GET', '/users/@me', undefined, { token: 'wrong' })).status).toBe(401);
    const unknown = await rest(e, 'GET', '/no/such/route');
    expect(unknown).toMatchObject({ status: 404, json: { message: '404: Not Found', code: 0 } });
    expect(e.errors().map((x) => `${x.route} ${x.status}`)).toEqual([
      'GET /users/@me 401',
      'GET /no/such/route 404',
    ]);
    const me = await rest(e, 'GET', '/users/@me');
    expect(me.json).toMatchObject({ id: e.botUser.id, bot: true, discriminator: '0' });
  });

  it('serves the application without install_params, the guild, its members and 18-19 digit snowflakes', async () => {
    const e = await start();
    const app = await rest(e, 'GET', '/applications/@me');
    expect(app.json).toMatchObject({ id: e.applicationId });
    expect(app.json).not.toHaveProperty('install_params');
    const alice = e.createUser('alice');
    expect((await rest(e, 'GET', `/guilds/${e.guildId}`)).json).toMatchObject({ id: e.guildId });
    expect((await rest(e, 'GET', `/guilds/${e.guildId}/members/${alice.id}`)).json).toMatchObject({
      user: { id: alice.id },
      roles: [],
    });
    for (const id of [e.guildId, e.applicationId, e.botUser.id, alice.id, e.defaultChannelId]) {
      expect(id).toMatch(/^\d{18,19}$/);
    }
  });

  it('refuses an empty message (50006), bad embeds (50035 with the field path) and accepts the limits', async () => {
    const e = await start({ channelRateLimit: false });
    const post = (body: unknown) => rest(e, 'POST', `/channels/${e.defaultChannelId}/messages`, body);
    expect((await post({})).json).toMatchObject({ code: 50006 });
    expect((await post({ content: '   ' })).json).toMatchObject({ code: 50006 });
    const eleven = Array.from({ length: 11 }, () => ({ title: 't' }));
    expect((await post({ embeds: eleven })).json).toMatchObject({
      code: 50035,
      errors: { embeds: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH' }] } },
    });
    expect((await post({ embeds: [{ title: 'x'.repeat(257) }] })).json).toMatchObject({
      code: 50035,
      errors: { embeds: { 0: { title: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH' }] } } } },
    });
    const fields = Array.from({ length: 26 }, (_, i) => ({ name: `f${i}`, value: 'v' }));
    expect((await post({ embeds: [{ fields }] })).json).toMatchObject({ code: 50035 });
    expect(
      (await post({ embeds: [{ fields: [{ name: 'n', value: 'v'.repeat(1025) }] }] })).json,
    ).toMatchObject({
      errors: {
        embeds: { 0: { fields: { 0: { value: { _errors: [{ code: 'BASE_TYPE_MAX_LENGTH' }] } } } } },
      },
    });
    expect((await post({ embeds: [{ footer: { text: 'f'.repeat(2049) } }] })).json).toMatchObject({
      code: 50035,
    });
    const big = [{ description: 'd'.repeat(4096) }, { description: 'd'.repeat(1905) }];
    expect((await post({ embeds: big })).json).toMatchObject({
      errors: { embeds: { _errors: [{ code: 'MAX_EMBED_SIZE_EXCEEDED' }] } },
    });
    const atLimit = [
      { title: 't'.repeat(256), description: 'd'.repeat(4096) },
      { description: 'd'.repeat(1648) },
    ];
    expect((await post({ embeds: atLimit })).status).toBe(200);
    expect((await post({ content: 'x'.repeat(2000) })).status).toBe(200);
    expect(e.channelMessages(e.defaultChannelId)).toHaveLength(2);
  });

  it('sends rate-limit headers, and a client ignoring them gets a 429 with Discord’s headers and body', async () => {
    const e = await start();
    const path = `/channels/${e.defaultChannelId}/messages`;
    const remaining: string[] = [];
    let bucket: string | null = null;
    for (let i = 1; i <= 5; i++) {
      const res = await rest(e, 'POST', path, { content: `m${i}` });
      expect(res.status).toBe(200);
      expect(res.headers.get('x-ratelimit-limit')).toBe('5');
      expect(Number(res.headers.get('x-ratelimit-reset-after'))).toBeGreaterThan(0);
      expect(Number(res.headers.get('x-ratelimit-reset'))).toBeGreaterThan(Date.now() / 1000);
      remaining.push(res.headers.get('x-ratelimit-remaining') ?? '');
      bucket ??= res.headers.get('x-ratelimit-bucket');
      expect(res.headers.get('x-ratelimit-bucket')).toBe(bucket);
    }
    expect(remaining).toEqual(['4', '3', '2', '1', '0']);
    const limited = await rest(e, 'POST', path, { content: 'm6' });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('x-ratelimit-remaining')).toBe('0');
    expect(limited.headers.get('x-ratelimit-scope')).toBe('user');
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(limited.json).toMatchObject({ message: 'You are being rate limited.', global: false });
    expect((limited.json as { retry_after: number }).retry_after).toBeGreaterThan(0);
    expect(e.rateLimited()).toHaveLength(1);
    // Another channel has its own bucket.
    const other = e.createTextChannel('other');
    expect((await rest(e, 'POST', `/channels/${other}/messages`, { content: 'free' })).status).toBe(200);
  });

  it('limits all bot-token requests globally, but not interaction callbacks', async () => {
    const e = await start({ globalRateLimit: { limit: 3, windowMs: 60_000 } });
    for (let i = 0; i < 3; i++) expect((await rest(e, 'GET', '/users/@me')).status).toBe(200);
    const limited = await rest(e, 'GET', '/users/@me');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('x-ratelimit-global')).toBe('true');
    expect(limited.headers.get('x-ratelimit-scope')).toBe('global');
    expect(limited.json).toMatchObject({ global: true });
    const alice = e.createUser('alice');
    const i = e.runCommand(e.defaultChannelId, alice, 'ping');
    const cb = await rest(
      e,
      'POST',
      `/interactions/${i.id}/${i.token}/callback`,
      { type: 4, data: { content: 'pong' } },
      { token: null },
    );
    expect(cb.status).toBe(204);
  });

  it('answers 10003 for a deleted thread, 10008 for an unknown message, 50083 when archived', async () => {
    const e = await start({ channelRateLimit: false });
    const alice = e.createUser('alice');
    const threadId = e.createThread(e.defaultChannelId, 'user thread', alice.id);
    expect(e.thread(threadId)).toMatchObject({ owner_id: alice.id, type: 11 });
    const posted = await rest(e, 'POST', `/channels/${threadId}/messages`, { content: 'hi' });
    const messageId = (posted.json as { id: string }).id;
    expect((await rest(e, 'GET', `/channels/${threadId}/messages/1234567890123456789`)).json).toMatchObject({
      code: 10008,
    });
    e.archiveThread(threadId);
    const edit = await rest(e, 'PATCH', `/channels/${threadId}/messages/${messageId}`, { content: 'edited' });
    expect(edit).toMatchObject({ status: 400, json: { code: 50083 } });
    const react = await rest(e, 'PUT', `/channels/${threadId}/messages/${messageId}/reactions/%E2%9C%85/@me`);
    expect(react.json).toMatchObject({ code: 50083 });
    const rename = await rest(e, 'PATCH', `/channels/${threadId}`, { name: 'renamed' });
    expect(rename.json).toMatchObject({ code: 50083 });
    const reopen = await rest(e, 'PATCH', `/channels/${threadId}`, { archived: false, name: 'renamed' });
    expect(reopen.json).toMatchObject({ name: 'renamed', thread_metadata: { archived: false } });
    expect(e.unarchivedByBotPost).toBe(0);
    e.deleteThread(threadId);
    expect((await rest(e, 'GET', `/channels/${threadId}`)).json).toMatchObject({ code: 10003 });
    expect((await rest(e, 'POST', `/channels/${threadId}/messages`, { content: 'x' })).status).toBe(404);
  });

  it('keeps the bot’s reactions per message and answers 204 without a body', async () => {
    const e = await start();
    const alice = e.createUser('alice');
    const m = e.userSays(e.defaultChannelId, alice, 'react to me');
    const base = `/channels/${e.defaultChannelId}/messages/${m.id}/reactions`;
    const put = await rest(e, 'PUT', `${base}/${encodeURIComponent('👀')}/@me`);
    expect(put.status).toBe(204);
    expect(put.headers.get('content-type')).toBeNull();
    await rest(e, 'PUT', `${base}/${encodeURIComponent('✅')}/@me`);
    await rest(e, 'DELETE', `${base}/${encodeURIComponent('👀')}/@me`);
    expect(e.reactions(e.defaultChannelId, m.id)).toEqual(['✅']);
    expect(e.channelMessages(e.defaultChannelId)[0]?.reactions).toMatchObject([
      { emoji: { name: '✅' }, me: true },
    ]);
  });

  it('stores registered commands and rejects invalid names', async () => {
    const e = await start();
    const path = `/applications/${e.applicationId}/guilds/${e.guildId}/commands`;
    const ok = await rest(e, 'PUT', path, [{ name: 'pool-status', description: 'Live sessions' }]);
    expect(ok.status).toBe(200);
    expect(e.registeredCommands(e.guildId)).toMatchObject([{ name: 'pool-status', guild_id: e.guildId }]);
    expect(e.registeredCommands()).toEqual([]);
    const bad = await rest(e, 'PUT', path, [{ name: 'Bad Name', description: 'x' }]);
    expect(bad.json).toMatchObject({ code: 50035 });
  });

  it('enforces the interaction deadline (10062), one initial response (40060) and the 15-minute token', async () => {
    const clock = manualClock();
    const e = await start({ clock: clock.now });
    const alice = e.createUser('alice');
    const callback = (i: { id: string; token: string }, body: unknown) =>
      rest(e, 'POST', `/interactions/${i.id}/${i.token}/callback`, body, { token: null });

    const late = e.runCommand(e.defaultChannelId, alice, 'late');
    clock.advance(3001);
    expect((await callback(late, { type: 5 })).json).toMatchObject({ code: 10062 });
    await expect(late.initialResponse).rejects.toThrow(/deadline/);

    const twice = e.runCommand(e.defaultChannelId, alice, 'twice');
    expect((await callback(twice, { type: 5, data: { flags: 64 } })).status).toBe(204);
    expect(await twice.initialResponse).toEqual({ type: 5, data: { flags: 64 } });
    expect(twice.ephemeral()).toBe(true);
    expect((await callback(twice, { type: 4, data: { content: 'again' } })).json).toMatchObject({
      code: 40060,
    });

    const original = `/webhooks/${e.applicationId}/${twice.token}/messages/@original`;
    const edited = await rest(e, 'PATCH', original, { content: 'done' }, { token: null });
    expect(edited.json).toMatchObject({ content: 'done', flags: 64 });
    expect(twice.original()?.content).toBe('done');
    clock.advance(15 * 60_000 + 1);
    expect((await rest(e, 'PATCH', original, { content: 'too late' }, { token: null })).json).toMatchObject({
      code: 50027,
    });
  });

  it('lets the first follow-up after a deferred reply replace the "thinking" message', async () => {
    const e = await start();
    const alice = e.createUser('alice');
    const i = e.runCommand(e.defaultChannelId, alice, 'think');
    await rest(e, 'POST', `/interactions/${i.id}/${i.token}/callback`, { type: 5 }, { token: null });
    expect(e.channelMessages(e.defaultChannelId).at(-1)).toMatchObject({ content: '', flags: 128, type: 20 });
    const f = await rest(
      e,
      'POST',
      `/webhooks/${e.applicationId}/${i.token}?wait=true`,
      { content: 'answer' },
      { token: null },
    );
    expect(f.json).toMatchObject({ id: i.original()?.id, content: 'answer', flags: 0 });
    expect(e.channelMessages(e.defaultChannelId)).toHaveLength(1);
    expect(e.channelMessages(e.defaultChannelId)[0]).toMatchObject({
      interaction_metadata: {
        id: i.id,
        type: 2,
        user: { id: alice.id },
        authorizing_integration_owners: { 0: e.guildId },
      },
    });
  });

  it('limits edits of messages older than an hour (30046)', async () => {
    const clock = manualClock();
    const e = await start({ clock: clock.now, oldMessageEditLimit: { limit: 2, windowMs: 60_000 } });
    const path = `/channels/${e.defaultChannelId}/messages`;
    const id = ((await rest(e, 'POST', path, { content: 'old' })).json as { id: string }).id;
    clock.advance(61 * 60_000);
    expect((await rest(e, 'PATCH', `${path}/${id}`, { content: 'a' })).status).toBe(200);
    expect((await rest(e, 'PATCH', `${path}/${id}`, { content: 'b' })).status).toBe(200);
    expect((await rest(e, 'PATCH', `${path}/${id}`, { content: 'c' })).json).toMatchObject({ code: 30046 });
  });

  it('injects faults into the next matching requests, then recovers', async () => {
    const e = await start();
    e.failNext(2, { status: 500, route: /^GET \/users\/@me$/ });
    e.failNext(1, { status: 429, retryAfterMs: 250 });
    expect((await rest(e, 'GET', '/users/@me')).status).toBe(500);
    expect((await rest(e, 'GET', '/users/@me')).status).toBe(500);
    const limited = await rest(e, 'GET', '/gateway/bot');
    expect(limited.status).toBe(429);
    expect(limited.headers.get('x-ratelimit-reset-after')).toBe('0.250');
    expect(limited.headers.get('retry-after')).toBe('1');
    expect((await rest(e, 'GET', '/users/@me')).status).toBe(200);
  });

  it('accepts a multipart upload as attachments', async () => {
    const e = await start();
    const form = new FormData();
    form.append('payload_json', JSON.stringify({ content: 'with a file' }));
    form.append('files[0]', new Blob(['hello'], { type: 'text/plain' }), 'hello.txt');
    const res = await fetch(`${e.apiBase}/v10/channels/${e.defaultChannelId}/messages`, {
      method: 'POST',
      headers: { authorization: `Bot ${e.botToken}` },
      body: form,
    });
    expect(res.status).toBe(200);
    expect(e.channelMessages(e.defaultChannelId)[0]).toMatchObject({
      content: 'with a file',
      attachments: [{ filename: 'hello.txt', size: 5, content_type: 'text/plain' }],
    });
  });

  it('validates its options up front, naming the option', () => {
    expect(() => new DiscordEmulator({ channelRateLimit: { limit: 0, windowMs: 1000 } })).toThrow(
      /channelRateLimit/,
    );
    expect(() => new DiscordEmulator({ interactionDeadlineMs: -1 })).toThrow(/interactionDeadlineMs/);
  });
});
