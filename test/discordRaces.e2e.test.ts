import { afterEach, describe, expect, it } from 'vitest';
import { BotHarness } from './helpers/botHarness.js';
import { alive, killAll } from './helpers/processes.js';

const MIN = 60_000;
let h: BotHarness | undefined;

afterEach(async () => {
  if (!h) return;
  const { emu, seen } = h;
  await h.dispose();
  // Discord never refused the bot (no 30046, no 50083), never rate-limited it, and no thread was reopened by it.
  expect(emu.errors().map((e) => ({ route: e.route, status: e.status, response: e.response }))).toEqual([]);
  expect(emu.rateLimited()).toEqual([]);
  expect(emu.unarchivedByBotPost).toBe(0);
  expect(alive(seen)).toEqual([]);
  await killAll(seen);
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
