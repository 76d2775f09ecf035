import type Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { BotHarness } from './helpers/botHarness.js';
import { alive, expectAllGone, identify, killAll } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

let h: BotHarness | undefined;
afterEach(async () => {
  const seen = h?.seen ?? [];
  await h?.dispose();
  expect(alive(seen)).toEqual([]);
  await killAll(seen);
  h = undefined;
});

/** A bot message in the thread that explains an ended session. */
function notice(harness: BotHarness, threadId: string, text: string) {
  return waitFor(
    () => harness.emu.channelMessages(threadId).find((m) => m.author.bot && m.content.includes(text)),
    `a notice containing ${JSON.stringify(text)}`,
    15_000,
  );
}

describe('agent faults: the thread is told, the reason is recorded, other threads are served', () => {
  it('missing executable (ENOENT): spawn_failed with a plain explanation', async () => {
    h = await BotHarness.start({ KIRO_CLI_PATH: '/nonexistent/kiro-cli' });
    const threadId = await h.mention(h.alice, 'hello');
    const m = await notice(h, threadId, 'could not be started');
    expect(m.content).toContain('`spawn_failed`');
    expect(m.content).toContain('/nonexistent/kiro-cli');
    expect(m.content).toContain('was not found');
    expect(m.content).toContain('Your next message starts a new session.');
    expect(h.app.store.history()[0]?.endReason).toBe('spawn_failed');
  });

  it.each([
    ['not-logged-in', 'not logged in'],
    ['exit-at-once', 'exited with code 3'],
    ['bad-model', 'rejected the configured model'],
  ])('start-up failure %s: spawn_failed and the agent’s words', async (mode, words) => {
    h = await BotHarness.start({ KIRO_FAKE_STARTUP: mode });
    const threadId = await h.mention(h.alice, 'hello');
    const m = await notice(h, threadId, 'could not be started');
    expect(m.content).toContain(words);
    await waitFor(() => h!.app.store.history()[0]?.endReason === 'spawn_failed', 'the spawn_failed row');
  });

  it('crash mid-turn, SIGTERM ignorer, 100 children and a 50 MB flood, while another thread keeps working', async () => {
    // 100 node children hold about 4 GB together: over the default MAX_MEMORY_MB, so a monitor tick landing while
    // they start (a loaded machine takes ~10 s) rightly ends the session as memory_limit. This test is about the
    // tree kill on archive, so the memory limit is out of its way.
    h = await BotHarness.start({ MAX_MEMORY_MB: '1048576' });
    const healthy = await h.mention(h.alice, 'I am the healthy thread');
    const crashing = await h.mention(h.alice, 'crash me');
    const forking = await h.mention(h.alice, 'fork me');
    await Promise.all([healthy, crashing, forking].map((t) => h!.botMessages(t, 0)));

    // 100 children, then archive: every one of them is gone.
    const spawned = await h.turn(forking, h.alice, 'fake:spawn many 100');
    const children = identify((spawned.at(-1)!.content.match(/\d+/g) ?? []).map(Number));
    expect(children.length).toBeGreaterThanOrEqual(90);
    h.seen.push(...children);
    await h.turn(forking, h.alice, 'fake:ignore-term');
    const tree = h.tree(forking);
    h.emu.archiveThread(forking);
    await expectAllGone([...tree, ...children], 500 + 1000 + 1000);

    // A crash mid-turn: told in plain words, recorded, the next message starts over.
    h.emu.userSays(crashing, h.alice, 'fake:crash');
    const m = await notice(h, crashing, 'exited unexpectedly');
    expect(m.content).toContain('partial output');

    // A flood of 50 MB: the reply is cut with a note, the bot's memory stays bounded.
    const before = process.memoryUsage().rss;
    const flood = await h.turn(healthy, h.alice, 'fake:flood 50', 120_000);
    const growthMb = (process.memoryUsage().rss - before) / 1024 / 1024;
    expect(flood.length).toBeLessThanOrEqual(9);
    expect(flood.map((x) => x.content).join('\n')).toMatch(
      /more characters of output not shown|lines of output omitted/,
    );
    expect(growthMb).toBeLessThan(200);

    // The healthy thread still answers.
    const after = await h.turn(healthy, h.alice, 'still here?');
    expect(after.at(-1)!.content).toBe('You said: still here?');
    const reasons = h.app.store.history().map((r) => r.endReason);
    expect(reasons).toContain('archived');
    expect(reasons).toContain('crashed');
  }, 180_000);

  it('a hanging agent is ended as stuck by the monitor and the thread is told', async () => {
    h = await BotHarness.start({ MAX_TURN_SILENCE_MS: '1000', RESOURCE_CHECK_INTERVAL_MS: '200' });
    const threadId = await h.mention(h.alice, 'hello');
    await h.botMessages(threadId, 0);
    h.emu.userSays(threadId, h.alice, 'fake:silent 60000');
    const m = await notice(h, threadId, '`stuck`');
    expect(m.content).toContain('no output for too long');
  });
});

describe('Discord faults', () => {
  it('the gateway drops mid-turn: the client reconnects, the reply arrives, the session lives on', async () => {
    h = await BotHarness.start();
    const threadId = await h.mention(h.alice, 'hello');
    await h.botMessages(threadId, 0);
    const session = h.app.pool.get(threadId)!;
    const sent = h.emu.userSays(threadId, h.alice, 'fake:slow-reply 5 200');
    await waitFor(() => session.state === 'busy', 'the turn to start');
    const identifies = h.emu.identifyCount;
    h.emu.dropConnections(4000);
    await waitFor(
      () => h!.emu.reactions(threadId, sent.id).includes('✅'),
      'the reply after the drop',
      20_000,
    );
    const reply = h.emu
      .channelMessages(threadId)
      .filter((m) => m.author.bot && BigInt(m.id) > BigInt(sent.id))
      .map((m) => m.content)
      .join('\n');
    expect(reply).toContain('slow line 5 of 5');
    await waitFor(
      () => h!.emu.identifyCount > identifies && h!.app.bridge.connected,
      'the client to reconnect',
    );
    expect(h.app.pool.get(threadId)?.id).toBe(session.id);
    const after = await h.turn(threadId, h.alice, 'after the drop');
    expect(after.at(-1)!.content).toBe('You said: after the drop');
  });

  it('429 storms and 500s: every reply still arrives, complete and in order', async () => {
    h = await BotHarness.start();
    const threadId = await h.mention(h.alice, 'hello');
    await h.botMessages(threadId, 0);
    h.emu.failNext(4, { status: 429, route: /^POST \/channels\/:id\/messages$/, retryAfterMs: 200 });
    h.emu.failNext(2, { status: 500, route: /^POST \/channels\/:id\/messages$/ });
    const texts = ['one', 'two', 'three', 'four'];
    const sent = texts.map((t) => h!.emu.userSays(threadId, h!.alice, t));
    await waitFor(
      () => sent.every((m) => h!.emu.reactions(threadId, m.id).some((r) => r === '✅' || r === '❌')),
      'every message to be answered',
      30_000,
    );
    const replies = h.emu
      .channelMessages(threadId)
      .filter((m) => m.author.bot && m.content.startsWith('You said: ') && BigInt(m.id) > BigInt(sent[0]!.id))
      .map((m) => m.content);
    expect(replies).toEqual(texts.map((t) => `You said: ${t}`));
    expect(h.emu.rateLimited().length).toBe(4);
  });

  it('malformed gateway payloads are skipped without crashing', async () => {
    h = await BotHarness.start();
    const threadId = await h.mention(h.alice, 'hello');
    await h.botMessages(threadId, 0);
    h.emu.dispatchRaw('THREAD_UPDATE', { thread_metadata: { archived: true } });
    h.emu.dispatchRaw('THREAD_DELETE', { id: 42 });
    h.emu.dispatchRaw('MESSAGE_CREATE', { id: 'x', channel_id: threadId, content: null });
    h.emu.dispatchRaw('MESSAGE_CREATE', {
      id: '1',
      channel_id: '2',
      author: { id: '3', bot: false },
      content: 'no guild',
    });
    h.emu.dispatchRaw('INTERACTION_CREATE', {
      id: '1',
      type: 99,
      token: 't',
      application_id: h.emu.applicationId,
    });
    h.emu.dispatchRaw('NOT_A_REAL_EVENT', { whatever: true });
    const after = await h.turn(threadId, h.alice, 'still fine');
    expect(after.at(-1)!.content).toBe('You said: still fine');
  });
});

describe('database faults', () => {
  it('a database that refuses writes: the bot keeps answering, /health is 503, history catches up after', async () => {
    h = await BotHarness.start();
    const url = `http://127.0.0.1:${h.app.httpAddress!.port}/health`;
    const threadId = await h.mention(h.alice, 'hello');
    await h.botMessages(threadId, 0);
    const db = (h.app.store as unknown as { db: Database.Database }).db;
    db.pragma('query_only = ON');
    const during = await h.turn(threadId, h.alice, 'while the disk is read-only');
    expect(during.at(-1)!.content).toBe('You said: while the disk is read-only');
    const bad = await fetch(url);
    expect(bad.status).toBe(503);
    expect(((await bad.json()) as { reason: string }).reason).toContain('database not writable');
    db.pragma('query_only = OFF');
    expect((await fetch(url)).status).toBe(200);
    const row = h.app.store.history().find((r) => r.threadId === threadId)!;
    expect(row.turns).toBe(2);
  });
});

describe('fifty threads at once with MAX_SESSIONS=10', () => {
  it('evicts idle sessions, never busy ones, tells the rest to retry, loses nothing, and every session has a row', async () => {
    h = await BotHarness.start({ MAX_SESSIONS: '10' });
    const users = Array.from({ length: 50 }, (_, i) => h!.emu.createUser(`user${i}`, { roles: [h!.roleId] }));
    const firsts = users.map((u, i) =>
      h!.emu.userSays(h!.emu.defaultChannelId, u, `fake:slow-reply 2 ${i % 2 ? 300 : 10}`, {
        mentionBot: true,
      }),
    );
    // Each message ends answered, or with ❌ and a pool-full notice in its thread; none is silently dropped.
    await waitFor(
      () =>
        firsts.every((m) => {
          const r = h!.emu.reactions(h!.emu.defaultChannelId, m.id);
          return r.includes('✅') || r.includes('❌');
        }),
      'all 50 messages to be answered or refused',
      120_000,
      50,
    );
    let answered = 0;
    let refused = 0;
    for (const m of firsts) {
      const r = h.emu.reactions(h.emu.defaultChannelId, m.id);
      const inThread = h.emu
        .channelMessages(m.id)
        .filter((x) => x.author.bot)
        .map((x) => x.content);
      if (r.includes('✅')) {
        answered++;
        expect(inThread.join('\n')).toContain('slow line 2 of 2');
      } else {
        refused++;
        // Told in the thread: the pool was full, or (rarely, under this load) its new session ended and why.
        expect(inThread.join('\n')).toMatch(
          /All 10 agent sessions are busy\. Try again in about \d+ s|The agent session ended because/,
        );
      }
    }
    expect(answered + refused).toBe(50);
    expect(answered).toBeGreaterThanOrEqual(10);
    // Busy sessions were never evicted: no turn was cut off by an eviction.
    const all = firsts.flatMap((m) => h!.emu.channelMessages(m.id)).map((x) => x.content);
    expect(all.some((c) => c.includes('session ended: evicted'))).toBe(false);
    expect(h.app.pool.size).toBeLessThanOrEqual(10);
    const rows = h.app.store.history({ limit: 1000 });
    expect(rows.length).toBe(answered);
    for (const row of rows) expect(row.endReason === null || row.endReason === 'evicted').toBe(true);
  }, 180_000);
});
