import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Events } from 'discord.js';
import { afterEach, describe, expect, it } from 'vitest';
import { BotHarness } from './helpers/botHarness.js';
import { botMessageAfter, buttonsOf, thread } from './helpers/turns.js';
import { waitFor } from './helpers/wait.js';

let h: BotHarness | undefined;

afterEach(async () => {
  await h?.disposeChecked();
  h = undefined;
});

// Both transports on the fake kiro-cli: ACP (JSON-RPC on pipes) and classic (the line UI in a pty).
describe.each([{ protocol: 'acp' }, { protocol: 'classic' }])(
  'Discord side of a turn ($protocol)',
  ({ protocol }) => {
    const start = () =>
      BotHarness.start({
        AGENT_PROTOCOL: protocol,
        ATTACHMENT_MAX_BYTES: '1000',
        ATTACHMENT_MAX_MESSAGE_BYTES: '1500',
      });

    it("permission buttons carry the agent's option names; a press answers and says who chose what", async () => {
      h = await start();
      const threadId = await thread(h);
      const sent = h.emu.userSays(threadId, h.alice, 'fake:permission');
      const prompt = await botMessageAfter(h, threadId, sent.id, (c) => c.includes('asks for permission'));
      const buttons = buttonsOf(prompt);
      expect(buttons.map((b) => b.label)).toEqual(['Yes', 'Always', 'No']);
      for (const b of buttons) expect(b.custom_id.length).toBeLessThanOrEqual(100);
      const stranger = h.emu.pressButton(threadId, prompt.id, buttons[0]!.custom_id, h.mallory);
      expect((await stranger.initialResponse).data).toMatchObject({
        content: expect.stringContaining('not allowed'),
      });
      expect(h.app.pool.get(threadId)!.pendingPermission).toBeDefined();
      const press = h.emu.pressButton(threadId, prompt.id, buttons[0]!.custom_id, h.bob);
      expect((await press.initialResponse).type).toBe(7);
      await waitFor(() => h!.emu.reactions(threadId, sent.id).includes('✅'), 'the turn to end');
      const answered = h.emu.channelMessages(threadId).find((m) => m.id === prompt.id)!;
      expect(answered.content).toMatch(new RegExp(`-# Yes \\(answered by <@${h.bob.id}>\\)$`));
      expect(answered.components).toEqual([]);
      expect(answered.mentions).toEqual([]);
    });

    it('a permission question left open when the session ends is marked expired', async () => {
      h = await start();
      const threadId = await thread(h);
      const sent = h.emu.userSays(threadId, h.alice, 'fake:permission');
      const prompt = await botMessageAfter(h, threadId, sent.id, (c) => c.includes('asks for permission'));
      const reset = h.emu.runCommand(threadId, h.alice, 'reset');
      await waitFor(() => reset.original()?.content?.includes('Session ended'), 'the /reset reply');
      const expired = await waitFor(
        () =>
          h!.emu.channelMessages(threadId).find((m) => m.id === prompt.id && m.content.includes('Expired')),
        'the prompt marked expired',
      );
      expect(expired.components).toEqual([]);
      const late = h.emu.pressButton(threadId, prompt.id, buttonsOf(prompt)[0]!.custom_id, h.alice);
      expect((await late.initialResponse).data).toMatchObject({
        content: expect.stringContaining('expired'),
      });
    });

    it('/cancel stops the turn and the thread is told in plain words', async () => {
      h = await start();
      const threadId = await thread(h);
      const sent = h.emu.userSays(threadId, h.alice, 'fake:hang');
      await waitFor(() => h!.app.pool.get(threadId)?.state === 'busy', 'the turn to start');
      const cancel = h.emu.runCommand(threadId, h.alice, 'cancel');
      await waitFor(() => cancel.original()?.content?.includes('Cancelling'), 'the /cancel reply');
      const told = await botMessageAfter(h, threadId, sent.id, (c) => c.includes('The turn was cancelled'));
      expect(told.content).not.toContain('⏳ working');
    });

    it('an attachment-only message is a message: its file is saved in the workspace and reaches the agent', async () => {
      h = await start();
      const threadId = await thread(h);
      const sent = h.emu.userSays(threadId, h.alice, '', {
        attachments: [
          { name: 'message.txt', data: 'a long paste\nline two', contentType: 'text/plain; charset=utf-8' },
        ],
      });
      await waitFor(() => h!.emu.reactions(threadId, sent.id).includes('✅'), 'the turn to end');
      const saved = join(h.dir, 'workspaces', threadId, 'attachments', sent.id, 'message.txt');
      expect(readFileSync(saved, 'utf8')).toBe('a long paste\nline two');
      const reply = await botMessageAfter(h, threadId, sent.id, (c) => c.includes('message.txt'));
      expect(reply.content).toContain(saved);
      expect(h.emu.attachmentDownloads).toEqual([expect.objectContaining({ status: 200, bytes: 21 })]);
    });

    it('a message waiting on its attachment download still reaches the agent before a later message', async () => {
      h = await start();
      const threadId = await thread(h);
      let release!: () => void;
      const hold = new Promise<void>((r) => {
        release = r;
      });
      const received = new Promise<void>((resolve) =>
        h!.app.bridge.client.on(Events.MessageCreate, (m) => {
          if (m.content === 'second') resolve();
        }),
      );
      const first = h.emu.userSays(threadId, h.alice, 'first', {
        attachments: [{ name: 'a.txt', data: 'aaa', hold }],
      });
      await waitFor(() => h!.emu.attachmentRequests.length === 1, 'the download to start');
      const second = h.emu.userSays(threadId, h.alice, 'second');
      await received;
      await new Promise((r) => setImmediate(r));
      release();
      await waitFor(() => h!.emu.reactions(threadId, second.id).includes('✅'), 'the second turn to end');
      const replies = h.emu
        .channelMessages(threadId)
        .filter((m) => m.author.id === h!.emu.botUser.id && BigInt(m.id) > BigInt(first.id))
        .map((m) => m.content);
      const a = replies.findIndex((c) => c.includes('first') && c.includes('a.txt'));
      const b = replies.findIndex((c) => c.includes('You said: second'));
      expect(a).toBeGreaterThanOrEqual(0);
      expect(a).toBeLessThan(b);
    });

    it('files that are too big, over the message total or unreachable are named in the thread; the rest go through', async () => {
      h = await start();
      const threadId = await thread(h);
      const sent = h.emu.userSays(threadId, h.alice, 'see the files', {
        attachments: [
          { name: 'huge.log', data: 'x'.repeat(1001) },
          { name: 'ok.txt', data: 'y'.repeat(900) },
          { name: 'second.txt', data: 'z'.repeat(700) },
          { name: 'gone.txt', data: 'q', status: 404 },
          { name: 'liar.txt', data: 'w'.repeat(5000), size: 10 },
        ],
      });
      const told = await botMessageAfter(h, threadId, sent.id, (c) =>
        c.startsWith('📎 Not passed to the agent'),
      );
      expect(told.content.split('\n').slice(1)).toEqual([
        '- `huge.log`: too big (1001 B, limit 1000 B)',
        "- `second.txt`: over this message's total (700 B, 600 B left of 1.5 KB)",
        '- `gone.txt`: could not be downloaded (HTTP 404)',
        "- `liar.txt`: over this message's total (more than 600 B arrived)",
      ]);
      await waitFor(() => h!.emu.reactions(threadId, sent.id).includes('✅'), 'the turn to end');
      const reply = await botMessageAfter(h, threadId, sent.id, (c) => c.includes('ok.txt'));
      expect(reply.content).not.toContain('second.txt');
    });

    it('an attachment-only message whose every file is refused is told and reaches no agent', async () => {
      h = await start();
      const threadId = await thread(h);
      const turns = h.app.store.history()[0]!.turns;
      const sent = h.emu.userSays(threadId, h.alice, '', {
        attachments: [{ name: 'huge.bin', data: 'x'.repeat(2000) }],
      });
      await botMessageAfter(h, threadId, sent.id, (c) => c.includes('`huge.bin`: too big'));
      await waitFor(() => h!.emu.reactions(threadId, sent.id).includes('❌'), 'the ❌ mark');
      expect(h.app.store.history()[0]!.turns).toBe(turns);
    });
  },
);

describe('classic transport', () => {
  it('/model and /agent say plainly when the agent offers no choice; autocomplete offers nothing', async () => {
    h = await BotHarness.start({ AGENT_PROTOCOL: 'classic' });
    const threadId = await thread(h);
    const complete = h.emu.autocomplete(threadId, h.alice, 'model', 'name', '');
    expect(await complete.initialResponse).toEqual({ type: 8, data: { choices: [] } });
    const model = h.emu.runCommand(threadId, h.alice, 'model', { name: 'auto' });
    await waitFor(
      () => model.original()?.content?.includes('does not offer a choice of models'),
      'the /model reply',
    );
    const agent = h.emu.runCommand(threadId, h.alice, 'agent', { name: 'kiro_planner' });
    await waitFor(
      () => agent.original()?.content?.includes('does not offer a choice of agents'),
      'the /agent reply',
    );
  });
});
