import { createHash } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { BotHarness } from './helpers/botHarness.js';

// Issue 12 end to end: the real bot and discord.js against the emulator, the fake drawing kiro-cli 2.x's classic
// UI in a pty. What users type stays text; what the agent writes reaches Discord as written.

let h: BotHarness | undefined;
afterEach(async () => {
  await h?.disposeChecked();
  h = undefined;
});

async function start(): Promise<{ thread: string; cwd: string }> {
  h = await BotHarness.start({ AGENT_PROTOCOL: 'classic', KIRO_FAKE_THINK_MS: '0' });
  const thread = await h.mention(h.alice, 'hello');
  await h.botMessages(thread, 0);
  h.tree(thread);
  const s = h.app.pool.get(thread)!;
  return { thread, cwd: s.cwd };
}

describe('classic UI through Discord', () => {
  it('a reply with a fenced block reaches Discord fenced, and a paragraph wider than the terminal unbroken', async () => {
    const { thread } = await start();
    const md = (await h!.turn(thread, h!.alice, 'fake:markdown')).map((m) => m.content).join('\n');
    expect(md).toContain('```js\nconst x = 1;\n```');
    expect(md).toContain('Use `npm test` and **bold**');
    const para = (await h!.turn(thread, h!.alice, 'fake:paragraph 900')).map((m) => m.content);
    const text = para.find((c) => c.startsWith('the0 '))!;
    expect(text.length).toBeGreaterThan(900);
    expect(text).not.toContain('\n');
  });

  it('a 4000-character message with an odd number of fences arrives as one turn', async () => {
    const { thread } = await start();
    let text = 'fake:sha code follows\n```js\nlet a = 1;\n```\n```';
    while (text.length < 4000) text += `\nconst v${text.length} = ${text.length};`;
    const replies = (await h!.turn(thread, h!.alice, text)).map((m) => m.content);
    const body = text.slice('fake:sha'.length);
    expect(replies.filter((c) => c.startsWith('sha256 '))).toEqual([
      `sha256 ${createHash('sha256').update(body).digest('hex')} chars ${body.length}`,
    ]);
  });

  it('a user’s !touch marker-file, /tools trust-all, /quit and @secret never run, never change trust, never end the session', async () => {
    const { thread, cwd } = await start();
    writeFileSync(join(cwd, 'secret'), 'the secret value');
    const pid = h!.app.pool.get(thread)!.pid;
    for (const text of ['!touch marker-file', '/tools trust-all', '/quit', '@secret', 'read @secret']) {
      const replies = (await h!.turn(thread, h!.alice, text)).map((m) => m.content).join('\n');
      expect(replies, text).toContain(text.replace(/^read /, ''));
      expect(replies, text).not.toContain('the secret value');
    }
    expect(existsSync(join(cwd, 'marker-file'))).toBe(false);
    const trust = (await h!.turn(thread, h!.alice, 'fake:trust')).map((m) => m.content);
    expect(trust).toContain('trust-all false; trusted none');
    expect(h!.app.pool.get(thread)?.pid).toBe(pid);
  });
});
