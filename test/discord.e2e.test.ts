import { afterEach, describe, expect, it } from 'vitest';
import { innermostPid } from '../src/process/sandbox/locateAgent.js';
import { findBwrap } from '../src/process/sandbox/probeSandbox.js';
import { BotHarness } from './helpers/botHarness.js';
import { expectAllGone } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

let h: BotHarness | undefined;

afterEach(async () => {
  await h?.disposeChecked();
  h = undefined;
});

/** Every bot message body in the request log pinged nobody. */
function mentionsOfBotPosts(harness: BotHarness): unknown[] {
  return harness.emu.requestLog
    .filter(
      (e) =>
        (e.method === 'POST' || e.method === 'PATCH') && /\/channels\/\d+\/messages(\/\d+)?$/.test(e.path),
    )
    .map((e) => (e.body as { allowed_mentions?: unknown } | undefined)?.allowed_mentions);
}

/** The fake's spelling of the few behaviours that differ between its classic and ACP modes. */
const SLOW = { classic: 'fake:slow-reply', acp: 'fake:slow' } as const;

describe.each(['classic', 'acp'] as const)(
  'Discord bridge end to end over %s (real discord.js, emulator, fake kiro-cli)',
  (protocol) => {
    const startBot = () => BotHarness.start({ AGENT_PROTOCOL: protocol });
    it('a mention starts a thread and a session; a second message reaches the same agent', async () => {
      h = await startBot();
      const t0 = Date.now();
      const threadId = await h.mention(h.alice, 'hello there');
      const [first] = await h.botMessages(threadId, t0);
      expect(first!.content).toBe('You said: hello there');
      const latency = Date.now() - t0;
      expect(latency).toBeGreaterThan(0);
      const pid = h.app.pool.get(threadId)!.pid;
      h.tree(threadId);
      const [second] = (await h.turn(threadId, h.alice, 'fake:pid')).slice(-1);
      expect(second!.content).toContain(`pid `);
      expect(h.app.pool.get(threadId)!.pid).toBe(pid);
      expect(h.app.pool.size).toBe(1);
      // The user's message carries the outcome.
      const reactions = h.emu.reactions(h.emu.defaultChannelId, threadId);
      expect(reactions).toContain('✅');
    });

    it('delivers a 5000-character reply with a code block complete, in valid parts', async () => {
      h = await startBot();
      const threadId = await h.mention(h.alice, 'start');
      await h.botMessages(threadId, 0);
      const parts = await h.turn(threadId, h.alice, 'fake:long 5000');
      expect(parts.length).toBe(3);
      let total = 0;
      for (const p of parts) {
        expect(p.content.length).toBeLessThanOrEqual(2000);
        expect(p.content.length).toBeGreaterThan(0);
        expect((p.content.match(/^```/gm) ?? []).length % 2).toBe(0);
        total += p.content.length;
      }
      expect(total).toBeGreaterThanOrEqual(4500);
      const joined = parts.map((p) => p.content).join('\n');
      const numbered = [...joined.matchAll(/^(?:line )?(\d+)\b/gm)].map((m) => Number(m[1]));
      expect(numbered.length).toBeGreaterThan(10);
    });

    it('streams a long turn into one message edited at most every 1.5 s, then the final text', async () => {
      h = await startBot();
      const threadId = await h.mention(h.alice, 'start');
      await h.botMessages(threadId, 0);
      const replies = await h.turn(threadId, h.alice, `${SLOW[protocol]} 16 300`);
      expect(replies).toHaveLength(1);
      const [reply] = replies;
      expect(reply!.content).toBe(
        Array.from({ length: 16 }, (_, i) => `slow line ${i + 1} of 16`).join('\n'),
      );
      const edits = h.emu.requestLog
        .filter((e) => e.method === 'PATCH' && e.path.endsWith(`/messages/${reply!.id}`))
        .map((e) => e.at);
      // The final edit is the one that replaces the preview; before it, streaming edits at most every 1.5 s.
      expect(edits.length).toBeGreaterThanOrEqual(2);
      const streaming = edits.slice(0, -1);
      for (let i = 1; i < streaming.length; i++)
        expect(streaming[i]! - streaming[i - 1]!).toBeGreaterThanOrEqual(1400);
      const typing = h.emu.requestLog.filter(
        (e) => e.route === 'POST /channels/:id/typing' && e.path.includes(threadId),
      );
      expect(typing.length).toBeGreaterThanOrEqual(1);
    });

    it('answers messages sent during a turn in order', async () => {
      h = await startBot();
      const threadId = await h.mention(h.alice, 'start');
      await h.botMessages(threadId, 0);
      h.emu.userSays(threadId, h.alice, `${SLOW[protocol]} 3 300`);
      h.emu.userSays(threadId, h.alice, 'second');
      h.emu.userSays(threadId, h.alice, 'third');
      await h.reply(threadId, (c) => c === 'You said: third');
      const finals = h.emu
        .channelMessages(threadId)
        .filter((m) => m.author.id === h!.emu.botUser.id)
        .map((m) => m.content);
      const slow = finals.findIndex((c) =>
        c.startsWith('slow line 1 of 3\nslow line 2 of 3\nslow line 3 of 3'),
      );
      expect(slow).toBeGreaterThan(0);
      expect(finals.slice(slow + 1)).toEqual(['You said: second', 'You said: third']);
    });

    it.each(['archive', 'delete'] as const)(
      '%s ends the session and every pid of its tree within KILL_GRACE_MS + 1 s',
      async (how) => {
        h = await startBot();
        const threadId = await h.mention(h.alice, 'start');
        await h.botMessages(threadId, 0);
        h.emu.userSays(threadId, h.alice, 'fake:spawn setsid');
        await h.reply(threadId, (c) => c.startsWith('spawned setsid'));
        const last = h.emu.userSays(threadId, h.alice, 'fake:ignore-term');
        await h.reply(threadId, (c) => c === 'ignoring SIGTERM');
        // Let the bot finish marking the message, so no reaction request races the teardown.
        await waitFor(() => h!.emu.reactions(threadId, last.id).join() === '✅', 'the ✅ reaction');
        const tree = h.tree(threadId);
        expect(tree.length).toBeGreaterThanOrEqual(3);
        const sessionId = h.app.pool.get(threadId)!.id;
        const start = performance.now();
        if (how === 'archive') h.emu.archiveThread(threadId);
        else h.emu.deleteThread(threadId);
        await expectAllGone(tree, 500 + 1000);
        const ms = performance.now() - start;
        expect(ms).toBeLessThan(1500);
        const row = await waitFor(
          () => h!.app.store.history().find((r) => r.id === sessionId && r.endReason),
          'the row',
        );
        expect(row.endReason).toBe(how === 'archive' ? 'archived' : 'deleted');
      },
    );

    it('an unarchived thread gets a fresh session in the same workspace, resumed', async () => {
      h = await startBot();
      const threadId = await h.mention(h.alice, 'remember me');
      await h.botMessages(threadId, 0);
      const first = h.app.pool.get(threadId)!;
      h.emu.archiveThread(threadId);
      await waitFor(() => first.state === 'closed', 'the archived session to end');
      h.emu.unarchiveThread(threadId);
      const t0 = Date.now();
      h.emu.userSays(threadId, h.alice, 'fake:history');
      const [reply] = await h.botMessages(threadId, t0);
      expect(reply!.content).toContain('remember me');
      const second = h.app.pool.get(threadId)!;
      expect(second.id).not.toBe(first.id);
      expect(second.cwd).toBe(first.cwd);
    });

    it('/pool-status lists the session with its thread and pid', async () => {
      h = await startBot();
      const threadId = await h.mention(h.alice, 'start');
      await h.botMessages(threadId, 0);
      const pid = h.app.pool.get(threadId)!.pid!;
      const i = h.emu.runCommand(threadId, h.alice, 'pool-status');
      const first = await i.initialResponse;
      expect(first.type).toBe(5);
      const embed = await waitFor(() => i.original()?.embeds?.[0], 'the /pool-status embed');
      expect(embed.title).toContain('1/10');
      expect(embed.description).toContain(`<#${threadId}>`);
      expect(embed.description).toContain(`pid ${pid}`);
      // The pid is the agent's own, and the embed says what it runs under (AGENT_SANDBOX=auto).
      const sandbox = embed.fields?.find((f) => f.name === 'Sandbox')?.value;
      if (findBwrap()) {
        expect(innermostPid(pid)).toBe(2);
        expect(sandbox).toContain('bwrap');
      } else expect(sandbox).toContain('off');
    });

    it('/cancel interrupts the turn and /reset ends the session', async () => {
      h = await startBot();
      const threadId = await h.mention(h.alice, 'start');
      await h.botMessages(threadId, 0);
      const t0 = Date.now();
      h.emu.userSays(threadId, h.alice, 'fake:hang');
      await waitFor(() => h!.app.pool.get(threadId)?.state === 'busy', 'the turn to start');
      const cancel = h.emu.runCommand(threadId, h.alice, 'cancel');
      await waitFor(() => cancel.original()?.content?.includes('Cancelling'), 'the /cancel reply');
      const told = await h.reply(threadId, (c) => c.includes('cancelled'));
      expect(Date.parse(told.timestamp)).toBeGreaterThanOrEqual(t0 - 5);
      const tree = h.tree(threadId);
      const sessionId = h.app.pool.get(threadId)!.id;
      const reset = h.emu.runCommand(threadId, h.alice, 'reset');
      await waitFor(() => reset.original()?.content?.includes('Session ended'), 'the /reset reply');
      await expectAllGone(tree, 100);
      expect(h.app.store.history().find((r) => r.id === sessionId)?.endReason).toBe('reset');
    });

    it('refuses a stranger: 🚫, nothing spawned, also inside an allowed user’s thread', async () => {
      h = await startBot();
      const m = h.emu.userSays(h.emu.defaultChannelId, h.mallory, 'let me in', { mentionBot: true });
      await waitFor(() => h!.emu.reactions(h!.emu.defaultChannelId, m.id).includes('🚫'), 'the 🚫 reaction');
      expect(h.emu.threads()).toEqual([]);
      expect(h.app.store.history()).toEqual([]);
      const threadId = await h.mention(h.bob, 'bob is allowed by role');
      await h.botMessages(threadId, 0);
      const turnsBefore = h.app.store.history()[0]!.turns;
      const inside = h.emu.userSays(threadId, h.mallory, 'fake:env');
      await waitFor(
        () => h!.emu.reactions(threadId, inside.id).includes('🚫'),
        'the 🚫 reaction in the thread',
      );
      expect(h.app.store.history()[0]!.turns).toBe(turnsBefore);
    });

    it('turns the permission prompt into buttons; a late press is told it expired', async () => {
      h = await startBot();
      const threadId = await h.mention(h.alice, 'start');
      await h.botMessages(threadId, 0);
      h.emu.userSays(threadId, h.alice, 'fake:permission');
      const prompt = await waitFor(
        () =>
          h!.emu
            .channelMessages(threadId)
            .find((m) => m.content.includes('asks for permission') && m.components?.length),
        'the permission buttons',
      );
      const stranger = h.emu.pressButton(
        threadId,
        prompt.id,
        `perm:${h.app.pool.get(threadId)!.id}:allow`,
        h.mallory,
      );
      expect((await stranger.initialResponse).data).toMatchObject({
        content: expect.stringContaining('not allowed'),
        flags: 64,
      });
      const customId = (prompt.components![0] as { components: { custom_id: string }[] }).components[0]!
        .custom_id;
      const press = h.emu.pressButton(threadId, prompt.id, customId, h.alice);
      expect((await press.initialResponse).type).toBe(7);
      // Over ACP the thread also gets a tool-call line: wait for the reply itself.
      await h.reply(threadId, (c) => c.includes('Ran pwd'));
      const late = h.emu.pressButton(threadId, prompt.id, customId, h.alice);
      expect((await late.initialResponse).data).toMatchObject({
        content: expect.stringContaining('expired'),
        flags: 64,
      });
    });

    it('agent output with @everyone, @here and mentions pings nobody', async () => {
      h = await startBot();
      const threadId = await h.mention(h.alice, 'start');
      await h.botMessages(threadId, 0);
      const t0 = Date.now();
      h.emu.userSays(threadId, h.alice, 'fake:mentions');
      const msgs = await h.botMessages(threadId, t0, 2);
      expect(msgs.map((m) => m.content).join('\n')).toContain('@everyone');
      const mentions = mentionsOfBotPosts(h);
      expect(mentions.length).toBeGreaterThanOrEqual(2);
      for (const m of mentions) expect(m).toMatchObject({ parse: [] });
    });

    it('tells the thread when the agent crashes, and the next message starts a new session', async () => {
      h = await startBot();
      const threadId = await h.mention(h.alice, 'start');
      await h.botMessages(threadId, 0);
      const t0 = Date.now();
      h.emu.userSays(threadId, h.alice, 'fake:crash');
      const msgs = await waitFor(() => {
        const found = h!.emu
          .channelMessages(threadId)
          .filter((m) => m.content.includes('exited unexpectedly'));
        return found.length > 0 ? found : undefined;
      }, 'the crash notice');
      expect(msgs[0]!.content).toContain('`crashed`');
      // Classic: the screen's last lines are in the notice; ACP: 'partial output' was streamed as reply text.
      if (protocol === 'classic') expect(msgs[0]!.content).toContain('partial output');
      h.emu.userSays(threadId, h.alice, 'are you back?');
      await h.reply(threadId, (c) => c === 'You said: are you back?');
      expect(h.app.store.history().map((r) => r.endReason)).toEqual([null, 'crashed']);
      expect(t0).toBeGreaterThan(0);
    });
  },
);
