import { Events } from 'discord.js';
import type { APIThreadChannel } from 'discord-api-types/v10';
import { afterEach, describe, expect, it } from 'vitest';
import type { MessageStep } from '../src/discord/DiscordBridge.js';
import { BotHarness } from './helpers/botHarness.js';
import { expectAllGone, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

const MIN = 60_000;
let h: BotHarness | undefined;

afterEach(async () => {
  await h?.disposeChecked();
  h = undefined;
});

describe('a turn that streams for longer than Discord lets a message be edited (emulator clock moved by hand)', () => {
  it('continues in a new message before the hour; no message is edited once an hour old', async () => {
    let offset = 0;
    const clock = () => Date.now() + offset;
    h = await BotHarness.start({}, { clock });
    const threadId = await h.mention(h.alice, 'start');
    await h.botMessages(threadId, 0);
    const sent = h.emu.userSays(threadId, h.alice, 'fake:slow-reply 30 400');
    const working = (after: string) => (m: { id: string; content: string }) =>
      BigInt(m.id) > BigInt(after) && m.content.includes('⏳ working…');
    const first = await h.emu.waitForBotMessage(threadId, working(sent.id), {
      what: 'the streaming message',
    });
    // 51 minutes later by Discord's clock (and the bot's): the next refresh leaves this message and starts another.
    offset += 51 * MIN;
    const second = await h.emu.waitForBotMessage(threadId, working(first.id), {
      what: 'the continuation message',
    });
    // Another 10 minutes: the first message is now more than an hour old, the second 10 minutes.
    offset += 10 * MIN;
    await h.emu.waitFor(() => h!.emu.reactions(threadId, sent.id).includes('✅'), {
      what: 'the turn to end',
      timeoutMs: 30_000,
    });
    const msgs = h.emu.channelMessages(threadId).filter((m) => BigInt(m.id) > BigInt(sent.id));
    expect(msgs.map((m) => m.id)).toEqual([first.id, second.id]);
    expect(msgs[0]!.content).toMatch(/slow line \d+ of 30\n-# ⏳ still working: continued below$/);
    expect(msgs[1]!.content).toBe(
      Array.from({ length: 30 }, (_, i) => `slow line ${i + 1} of 30`).join('\n'),
    );
    // Every edit of a message in the thread happened while it was less than an hour old, by Discord's clock.
    const postedAt = new Map(h.emu.channelMessages(threadId).map((m) => [m.id, Date.parse(m.timestamp)]));
    const edits = h.emu.requestLog.filter(
      (e) => e.method === 'PATCH' && e.path.startsWith(`/channels/${threadId}/messages/`),
    );
    const ages = edits.map((e) => e.at - postedAt.get(e.path.split('/').at(-1)!)!);
    expect(edits.filter((e) => e.path.endsWith(second.id)).length).toBeGreaterThanOrEqual(2);
    expect(Math.max(...ages)).toBeLessThan(59 * MIN);
  }, 60_000);
});

/** Archives or deletes a thread; resolves once the bot's client has handled that gateway event (the bridge's raw
 * listener was registered first, so it has run too). */
function closeAndSee(harness: BotHarness, threadId: string, how: 'archive' | 'delete'): Promise<void> {
  const client = harness.app.bridge.client;
  return new Promise((resolve) => {
    const seen = (p: { t?: string; d?: { id?: string } }) => {
      if ((p.t === 'THREAD_UPDATE' || p.t === 'THREAD_DELETE') && p.d?.id === threadId) {
        client.off(Events.Raw, seen);
        resolve();
      }
    };
    client.on(Events.Raw, seen);
    if (how === 'archive') harness.emu.archiveThread(threadId);
    else harness.emu.deleteThread(threadId);
  });
}

/** A test's hook into the bridge: when `step` is reached for `threadId`, runs `act` once (the bridge waits). */
class StepTrap {
  threadId = '';
  fired = 0;
  constructor(
    private readonly step: MessageStep,
    private readonly act: (threadId: string) => Promise<void>,
  ) {}
  readonly hook = async (step: MessageStep, threadId: string): Promise<void> => {
    if (step !== this.step || threadId !== this.threadId || this.fired > 0) return;
    this.fired++;
    await this.act(threadId);
  };
}

/**
 * The thread's session ends (archive), the thread is reopened, and the bot's client forgets it, as after a restart:
 * the next message in it comes for a channel discord.js has not cached, so the bridge must fetch it.
 */
async function forgetThread(harness: BotHarness, threadId: string): Promise<void> {
  const first = harness.app.pool.get(threadId)!;
  harness.tree(threadId);
  await closeAndSee(harness, threadId, 'archive');
  await waitFor(() => first.state === 'closed', 'the first session to end');
  const client = harness.app.bridge.client;
  await new Promise<void>((resolve) => {
    const seen = (p: { t?: string; d?: { id?: string } }) => {
      if (p.t === 'THREAD_UPDATE' && p.d?.id === threadId) {
        client.off(Events.Raw, seen);
        resolve();
      }
    };
    client.on(Events.Raw, seen);
    harness.emu.unarchiveThread(threadId);
  });
  client.channels.cache.delete(threadId);
}

describe('a thread the bot has not cached', () => {
  it('a message in the bot’s own thread still reaches the agent (the thread is fetched, its owner known)', async () => {
    h = await BotHarness.start();
    const threadId = await h.mention(h.alice, 'first');
    await h.botMessages(threadId, 0);
    await forgetThread(h, threadId);
    const before = h.emu.requestLog.length;
    const replies = await h.turn(threadId, h.alice, 'are you there?');
    expect(replies.map((m) => m.content)).toEqual(['You said: are you there?']);
    expect(
      h.emu.requestLog.slice(before).some((e) => e.method === 'GET' && e.path === `/channels/${threadId}`),
    ).toBe(true);
    h.tree(threadId);
  });
});

describe.each(['archive', 'delete'] as const)(
  '%s racing a message: no agent runs for the closed thread and nothing is posted there',
  (how) => {
    it.each(['thread-started', 'reacted', 'acquired'] as const)(
      `${how} landing at step "%s" of the thread's first message`,
      async (step) => {
        let tree: Pid[] = [];
        const trap = new StepTrap(step, async (threadId) => {
          // At "acquired" the agent exists: remember every pid of its tree, then close the thread.
          if (step === 'acquired') tree = h!.tree(threadId);
          await closeAndSee(h!, threadId, how);
        });
        h = await BotHarness.start({}, {}, { onMessageStep: trap.hook });
        const started: string[] = [];
        h.app.pool.on('sessionCreated', (s) => started.push(s.threadId));
        const msg = h.emu.userSays(h.emu.defaultChannelId, h.alice, 'fake:slow-reply 3 100', {
          mentionBot: true,
        });
        trap.threadId = msg.id; // a thread started from a message takes the message's id
        await waitFor(() => trap.fired === 1, `the bridge to reach "${step}"`);
        if (step === 'acquired') {
          expect(tree.length).toBeGreaterThanOrEqual(1);
          await expectAllGone(tree, 500 + 1000);
          const row = await waitFor(
            () => h!.app.store.history().find((r) => r.threadId === msg.id && r.endReason),
            'the ended row',
          );
          expect(row.endReason).toBe(how === 'archive' ? 'archived' : 'deleted');
        } else {
          expect(started).toEqual([]);
        }
        await waitFor(() => h!.emu.reactions(h!.emu.defaultChannelId, msg.id).length === 0, 'the 👀 to go');
        // The bot keeps serving: a later thread is answered (and by then the raced handler is long done).
        const other = await h.mention(h.alice, 'still there?');
        await h.botMessages(other, 0);
        expect(h.app.pool.get(msg.id)).toBeUndefined();
        expect(started.filter((t) => t === msg.id)).toHaveLength(step === 'acquired' ? 1 : 0);
        if (how === 'archive') {
          expect((h.emu.thread(msg.id) as APIThreadChannel | undefined)?.thread_metadata?.archived).toBe(
            true,
          );
          expect(h.emu.channelMessages(msg.id).filter((m) => m.author.bot)).toEqual([]);
        } else {
          expect(h.emu.thread(msg.id)).toBeUndefined();
        }
        expect(h.emu.reactions(h.emu.defaultChannelId, msg.id)).toEqual([]);
      },
    );

    it(`${how} landing while the bot fetches an uncached thread for a message in it`, async () => {
      const trap = new StepTrap('channel', (threadId) => closeAndSee(h!, threadId, how));
      h = await BotHarness.start({}, {}, { onMessageStep: trap.hook });
      const threadId = await h.mention(h.alice, 'first');
      await h.botMessages(threadId, 0);
      await forgetThread(h, threadId);
      const started: string[] = [];
      h.app.pool.on('sessionCreated', (s) => started.push(s.threadId));
      trap.threadId = threadId;
      const before = h.emu.requestLog.length;
      const sent = h.emu.userSays(threadId, h.alice, 'second');
      await waitFor(() => trap.fired === 1, 'the bridge to fetch the thread');
      expect(
        h.emu.requestLog.slice(before).some((e) => e.method === 'GET' && e.path === `/channels/${threadId}`),
      ).toBe(true);
      const other = await h.mention(h.alice, 'still there?');
      await h.botMessages(other, 0);
      expect(started).toEqual([other]);
      expect(h.app.pool.get(threadId)).toBeUndefined();
      if (how === 'archive') {
        expect((h.emu.thread(threadId) as APIThreadChannel | undefined)?.thread_metadata?.archived).toBe(
          true,
        );
        const after = h.emu.channelMessages(threadId).filter((m) => BigInt(m.id) > BigInt(sent.id));
        expect(after).toEqual([]);
        expect(h.emu.reactions(threadId, sent.id)).toEqual([]);
      } else {
        expect(h.emu.thread(threadId)).toBeUndefined();
      }
    });
  },
);
