import type { APIUser } from 'discord-api-types/v10';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Access } from '../src/discord/Access.js';
import { BotHarness } from './helpers/botHarness.js';
import { waitFor } from './helpers/wait.js';

describe('Access rules (unit)', () => {
  const U = '100000000000000001';
  const R = '200000000000000002';
  const C = '300000000000000003';
  const other = '900000000000000009';
  it.each([
    [
      { allowedUserIds: [U], allowedRoleIds: [], allowedChannelIds: [] },
      { userId: U, roleIds: [], channelId: other },
      true,
    ],
    [
      { allowedUserIds: [U], allowedRoleIds: [], allowedChannelIds: [] },
      { userId: other, roleIds: [R], channelId: other },
      false,
    ],
    [
      { allowedUserIds: [], allowedRoleIds: [R], allowedChannelIds: [] },
      { userId: other, roleIds: [R], channelId: other },
      true,
    ],
    [
      { allowedUserIds: [U], allowedRoleIds: [R], allowedChannelIds: [] },
      { userId: other, roleIds: [R], channelId: other },
      true,
    ],
    [
      { allowedUserIds: [], allowedRoleIds: [], allowedChannelIds: [C] },
      { userId: other, roleIds: [], channelId: C },
      true,
    ],
    [
      { allowedUserIds: [], allowedRoleIds: [], allowedChannelIds: [C] },
      { userId: U, roleIds: [], channelId: other },
      false,
    ],
    [
      { allowedUserIds: [], allowedRoleIds: [], allowedChannelIds: [C] },
      { userId: U, roleIds: [], channelId: other, parentId: C },
      true,
    ],
    [
      { allowedUserIds: [U], allowedRoleIds: [], allowedChannelIds: [C] },
      { userId: U, roleIds: [], channelId: other },
      false,
    ],
    [
      { allowedUserIds: [U], allowedRoleIds: [], allowedChannelIds: [C] },
      { userId: other, roleIds: [], channelId: C },
      false,
    ],
  ])('%j allows %j: %s', (config, subject, expected) => {
    expect(new Access(config).allows(subject)).toBe(expected);
  });
});

/**
 * The matrix end to end: alice (allowed by id), bob (allowed by role), mallory (neither), in the allowed channel
 * and in another one, for every action, over each agent protocol.
 */
describe.each(['classic', 'acp'] as const)('access matrix end to end over %s', (protocol) => {
  let h: BotHarness;
  let otherChannel: string;
  let aliceThread: string;

  beforeAll(async () => {
    h = await BotHarness.start((emu) => ({
      ALLOWED_CHANNEL_IDS: emu.defaultChannelId,
      AGENT_PROTOCOL: protocol,
    }));
    otherChannel = h.emu.createTextChannel('elsewhere');
    aliceThread = await h.mention(h.alice, 'alice starts');
    await h.botMessages(aliceThread, 0);
  }, 60_000);

  afterAll(() => h.disposeChecked());

  const users = () => ({ alice: h.alice, bob: h.bob, mallory: h.mallory });
  const refusedMark = (channel: string, id: string) =>
    waitFor(
      () => h.emu.reactions(channel, id).includes('🚫') || h.emu.reactions(channel, id).includes('✅'),
      'a mark',
    );

  it.each(['alice', 'bob', 'mallory'] as const)('%s mentions the bot in the allowed channel', async (who) => {
    const user: APIUser = users()[who];
    const before = h.app.store.history().length;
    const m = h.emu.userSays(h.emu.defaultChannelId, user, `hello from ${who}`, { mentionBot: true });
    await refusedMark(h.emu.defaultChannelId, m.id);
    const started = h.emu.threads().some((t) => t.id === m.id);
    expect(started).toBe(who !== 'mallory');
    expect(h.app.store.history().length).toBe(before + (who === 'mallory' ? 0 : 1));
  });

  it.each(['alice', 'bob', 'mallory'] as const)(
    '%s mentions the bot in a channel that is not allowed',
    async (who) => {
      const before = h.app.store.history().length;
      const m = h.emu.userSays(otherChannel, users()[who], 'hello elsewhere', { mentionBot: true });
      await waitFor(() => h.emu.reactions(otherChannel, m.id).includes('🚫'), 'the refusal');
      expect(h.emu.threads().some((t) => t.id === m.id)).toBe(false);
      expect(h.app.store.history().length).toBe(before);
    },
  );

  it.each(['alice', 'bob', 'mallory'] as const)('%s sends a turn in alice’s thread', async (who) => {
    const turnsBefore = h.app.store.history().find((r) => r.threadId === aliceThread)!.turns;
    const m = h.emu.userSays(aliceThread, users()[who], `turn from ${who}`);
    await refusedMark(aliceThread, m.id);
    const turnsAfter = h.app.store.history().find((r) => r.threadId === aliceThread)!.turns;
    expect(turnsAfter - turnsBefore).toBe(who === 'mallory' ? 0 : 1);
  });

  it.each(['bob', 'mallory', 'alice'] as const)('%s presses a permission button', async (who) => {
    const sent = h.emu.userSays(aliceThread, h.alice, 'fake:permission');
    const prompt = await waitFor(
      () =>
        h.emu
          .channelMessages(aliceThread)
          .find(
            (m) =>
              BigInt(m.id) > BigInt(sent.id) &&
              m.content.includes('asks for permission') &&
              m.components?.length,
          ),
      'the permission prompt',
    );
    const customId = (prompt.components![0] as { components: { custom_id: string }[] }).components[0]!
      .custom_id;
    const press = h.emu.pressButton(aliceThread, prompt.id, customId, users()[who]);
    const response = await press.initialResponse;
    if (who === 'mallory') {
      expect(response.data).toMatchObject({ content: expect.stringContaining('not allowed'), flags: 64 });
      expect(h.app.pool.get(aliceThread)!.pendingPermission).toBeDefined();
      const s = h.app.pool.get(aliceThread)!;
      const q = s.pendingPermission!;
      s.answerPermission(q.requestId, q.options.find((o) => o.kind === 'reject_once')!.optionId);
    } else {
      expect(response.type).toBe(7);
    }
    await waitFor(() => h.emu.reactions(aliceThread, sent.id).includes('✅'), 'the turn to end');
  });

  it.each(['pool-status', 'cancel', 'reset'] as const)(
    '/%s: refused for mallory, allowed for bob',
    async (command) => {
      const refused = h.emu.runCommand(aliceThread, h.mallory, command);
      await waitFor(() => refused.original()?.content?.includes('not allowed'), 'the refusal');
      expect(refused.original()?.embeds ?? []).toEqual([]);
      expect(h.app.pool.get(aliceThread)).toBeDefined();
      const ok = h.emu.runCommand(aliceThread, h.bob, command);
      await waitFor(() => ok.original()?.content || ok.original()?.embeds?.length, 'the answer');
      expect(ok.original()?.content ?? '').not.toContain('not allowed');
      if (command === 'reset') {
        expect(h.app.pool.get(aliceThread)).toBeUndefined();
        const again = h.emu.userSays(aliceThread, h.alice, 'back again');
        await waitFor(() => h.emu.reactions(aliceThread, again.id).includes('✅'), 'a new session');
      }
    },
  );
});
