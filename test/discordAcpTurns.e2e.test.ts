import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { BotHarness } from './helpers/botHarness.js';
import { botMessageAfter, buttonsOf, thread } from './helpers/turns.js';
import { waitFor } from './helpers/wait.js';

let h: BotHarness | undefined;

afterEach(async () => {
  await h?.disposeChecked();
  h = undefined;
});

describe('Discord side of an ACP turn (fake kiro-cli acp)', () => {
  const start = (env: Record<string, string> = {}) => BotHarness.start({ AGENT_PROTOCOL: 'acp', ...env });

  it('tool calls are one status message, one line each with the final status; the reply stays reply text', async () => {
    h = await start();
    const threadId = await thread(h);
    const sent = h.emu.userSays(threadId, h.alice, 'fake:tool-fail');
    await waitFor(() => h!.emu.reactions(threadId, sent.id).includes('✅'), 'the turn to end');
    const after = h.emu
      .channelMessages(threadId)
      .filter((m) => m.author.id === h!.emu.botUser.id && BigInt(m.id) > BigInt(sent.id));
    const tools = after.filter((m) => m.content.includes('🔧 tool calls'));
    expect(tools).toHaveLength(1);
    expect(tools[0]!.content.split('\n')).toEqual([
      '-# 🔧 tool calls: 1',
      '❌ Reading: /nonexistent · failed',
    ]);
    expect(after.find((m) => m.content === 'The file does not exist.')).toBeDefined();
    // Every edit of the status message came at least 1.5 s after the previous post or edit of it.
    const times = h.emu.requestLog
      .filter((e) => e.path.endsWith(`/messages/${tools[0]!.id}`) && e.method === 'PATCH')
      .map((e) => e.at);
    for (let i = 1; i < times.length; i++) expect(times[i]! - times[i - 1]!).toBeGreaterThanOrEqual(1500);
  });

  it('thought chunks are never posted; max_tokens and refusal endings are told in plain words', async () => {
    h = await start();
    const threadId = await thread(h);
    const think = await h.turn(threadId, h.alice, 'fake:think');
    expect(think.map((m) => m.content).join('\n')).not.toMatch(/Let me think|Thinking done/);
    expect(think.at(-1)!.content).toBe('You said: fake:think');
    const cut = await h.turn(threadId, h.alice, 'fake:stop max_tokens');
    expect(cut.at(-1)!.content).toBe(
      'stopping with max_tokens\n✂️ The reply was cut off: the agent reached its output length limit. Ask it to continue.',
    );
    const refused = await h.turn(threadId, h.alice, 'fake:stop refusal');
    expect(refused.at(-1)!.content).toMatch(/declined to answer/);
  });

  it('the usage footer sits under the final reply; credits reach /metrics, /pool-status and history', async () => {
    h = await start({ USAGE_FOOTER: 'true' });
    const threadId = await thread(h);
    const [reply] = await h.turn(threadId, h.alice, 'hello usage');
    expect(reply!.content).toMatch(/^You said: hello usage\n-# 0\.04 credits · context \d+% · \d+\.\d s$/);
    const metrics = await (await fetch(`http://127.0.0.1:${h.app.httpAddress!.port}/metrics`)).text();
    // Two turns so far (the first message and this one), 0.04 credits each.
    expect(metrics).toMatch(/^threadwarden_credits_total 0\.08$/m);
    expect(metrics).toMatch(
      new RegExp(`^threadwarden_session_context_percent\\{thread_id="${threadId}"\\} \\d+`, 'm'),
    );
    const status = h.emu.runCommand(threadId, h.alice, 'pool-status');
    const embed = await waitFor(() => status.original()?.embeds?.[0], 'the /pool-status embed');
    expect(embed.description).toContain('0.08 credits (thread 0.08)');
    const sums = h.app.store.usageOfThreads([threadId]);
    expect(sums.byThread.get(threadId)).toMatchObject({ credits: 0.08, turnsWithUsage: 2 });
  });

  it('/model autocompletes from the session, switches, and says plainly what it does not offer', async () => {
    h = await start();
    const threadId = await thread(h);
    const complete = h.emu.autocomplete(threadId, h.alice, 'model', 'name', 'haiku');
    expect(await complete.initialResponse).toEqual({
      type: 8,
      data: { choices: [{ name: 'claude-haiku-4.5', value: 'claude-haiku-4.5' }] },
    });
    const stranger = h.emu.autocomplete(threadId, h.mallory, 'model', 'name', '');
    expect(await stranger.initialResponse).toEqual({ type: 8, data: { choices: [] } });
    const set = h.emu.runCommand(threadId, h.alice, 'model', { name: 'claude-haiku-4.5' });
    await waitFor(() => set.original()?.content?.includes('now `claude-haiku-4.5`'), 'the /model reply');
    const [state] = await h.turn(threadId, h.alice, 'fake:state');
    expect(state!.content).toContain('model=claude-haiku-4.5');
    const bad = h.emu.runCommand(threadId, h.alice, 'model', { name: 'gpt-9' });
    await waitFor(() => bad.original()?.content?.includes('There is no model `gpt-9`'), 'the refusal');
    const agents = h.emu.autocomplete(threadId, h.alice, 'agent', 'name', '');
    const offered = (await agents.initialResponse).data as { choices: { value: string }[] };
    expect(offered.choices.map((c) => c.value)).toContain('kiro_default');
    const other = offered.choices.find((c) => c.value !== 'kiro_default')!.value;
    const mode = h.emu.runCommand(threadId, h.alice, 'agent', { name: other });
    await waitFor(() => mode.original()?.content?.includes(`now \`${other}\``), 'the /agent reply');
  });

  it('after /reset the thread’s conversation goes on silently; when it cannot be restored the thread is told why, before the reply', async () => {
    h = await start();
    const threadId = await thread(h);
    await h.turn(threadId, h.alice, 'remember kumquat');
    const reset = h.emu.runCommand(threadId, h.alice, 'reset');
    await waitFor(() => reset.original()?.content?.includes('Session ended'), 'the /reset reply');
    const [restored] = await h.turn(threadId, h.alice, 'fake:history');
    expect(restored!.content).toContain('kumquat');
    const notRestored = (c: string) => c.includes('could not be restored');
    expect(h.emu.channelMessages(threadId).filter((m) => notRestored(m.content))).toEqual([]);

    // The agent no longer knows the session the thread points at (its store was lost, say).
    const cwd = h.app.pool.get(threadId)!.cwd;
    const again = h.emu.runCommand(threadId, h.alice, 'reset');
    await waitFor(() => again.original()?.content?.includes('Session ended'), 'the second /reset reply');
    h.app.store.recordAgentSession('none', threadId, randomUUID(), cwd, 'acp');
    h.app.store.flush();
    const after = await h.turn(threadId, h.alice, 'fake:history');
    expect(after.map((m) => m.content)).toEqual([
      expect.stringMatching(/could not be restored \(.*Session not found.*\): this session starts afresh/),
      expect.not.stringContaining('kumquat'),
    ]);
  });

  it('an image reaches the agent as an image block; a text file as a resource link', async () => {
    h = await start();
    const threadId = await thread(h);
    const png = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex');
    const sent = h.emu.userSays(threadId, h.alice, 'look', {
      attachments: [
        { name: 'shot.png', data: png, contentType: 'image/png' },
        { name: 'notes.txt', data: 'hello', contentType: 'text/plain' },
      ],
    });
    const reply = await botMessageAfter(h, threadId, sent.id, (c) => c.startsWith('You said: look'));
    expect(reply!.content).toMatch(/^You said: look\nattachments: /);
    expect(reply!.content).toContain(`image image/png ${png.toString('base64').length}b64`);
    expect(reply!.content).toMatch(/resource_link notes\.txt file:\/\/\S+\/attachments\/\d+\/notes\.txt/);
  });

  it('concurrent permission questions each get their own buttons and each press answers its own', async () => {
    h = await start();
    const threadId = await thread(h);
    const sent = h.emu.userSays(threadId, h.alice, 'fake:storm 3');
    const prompts = await waitFor(() => {
      const found = h!.emu
        .channelMessages(threadId)
        .filter((m) => BigInt(m.id) > BigInt(sent.id) && m.content.includes('asks for permission'));
      return found.length === 3 ? found : undefined;
    }, 'three permission prompts');
    const ids = new Set(prompts.flatMap((p) => buttonsOf(p).map((b) => b.custom_id)));
    expect(ids.size).toBe(9);
    for (const [i, p] of prompts.entries()) {
      const press = h.emu.pressButton(threadId, p.id, buttonsOf(p)[i === 2 ? 2 : 0]!.custom_id, h.alice);
      expect((await press.initialResponse).type).toBe(7);
    }
    const end = await botMessageAfter(h, threadId, sent.id, (c) => c.startsWith('storm:'));
    expect(end.content).toBe('storm: 3 requests, 2 allowed, 1 rejected, 0 cancelled');
  });
});
