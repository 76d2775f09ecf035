import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { PermissionRequest } from '../src/agent/types.js';
import { SpawnFailedError } from '../src/errors.js';
import { PoolHarness, threadId } from './helpers/harness.js';
import { waitFor } from './helpers/wait.js';

// The pty transport against what kiro-cli 2.x's classic UI really draws and accepts (shared/kiro-cli.md, issue
// 12), through the fake that now draws it: each test here failed against the transport built on the old belief.

let h: PoolHarness | undefined;
afterEach(async () => {
  await h?.disposeChecked();
  h = undefined;
});

const QUICK = { KIRO_FAKE_THINK_MS: '0' };
function harness(
  env: Record<string, string> = {},
  overrides: ConstructorParameters<typeof PoolHarness>[0] = {},
) {
  h = new PoolHarness(
    { spawnTimeoutMs: 60_000, ...overrides },
    { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...QUICK, ...env } },
  );
  return h;
}

/** A fence-balanced-or-not message of about `size` characters. */
function fenced(size: number, fences: number): string {
  const lines: string[] = ['fake:sha here is some code'];
  for (let i = 0; i < fences; i++) lines.push(i % 2 === 0 ? '```js' : '```');
  let text = lines.join('\n');
  while (text.length < size) text += `\nconst v${text.length} = ${text.length};`;
  return text;
}

describe('classic transport against the kiro-cli 2.x screen', () => {
  it('becomes ready at the first read even though the prompt is `0% > ` with a grey hint after it', async () => {
    const s = await harness().pool.acquire(threadId());
    await s.ready;
    expect(s.state).toBe('idle');
    const r = await s.prompt('hello agent');
    // The purple reply prefix, the spinner on stderr and the grey summary line are not reply text.
    expect(r.text).toBe('You said: hello agent');
    // The summary line's credits and the next prompt's context use are the turn's usage.
    expect(r.usage).toMatchObject({ credits: 0.04, contextPercent: 1 });
  });

  it('strips the green reply prefix of kiro-cli 1.x and a summary line without Credits', async () => {
    const s = await harness({ KIRO_FAKE_VERSION: '1', KIRO_FAKE_NO_CREDITS: '1' }).pool.acquire(threadId());
    expect((await s.prompt('hello')).text).toBe('You said: hello');
    expect((await s.prompt('again')).text).toBe('You said: again');
  });

  it('answers the start-up cursor probes, sizes the pty before spawn and never resizes it, writes nothing early', async () => {
    const s = await harness().pool.acquire(threadId());
    const r = await s.prompt('fake:startup');
    expect(r.text).toContain('probes answered 2 of 2; eaten ""; resizes before the first read 0; resizes 0');
  });

  it('a message sent before the agent is ready is typed at the first read and answered', async () => {
    const s = await harness().pool.acquire(threadId());
    const r = await s.prompt('early message');
    expect(r.text).toBe('You said: early message');
    expect((await s.prompt('fake:startup')).text).toContain('eaten ""');
  });

  it('a 4000-character message with an odd number of fences arrives as one turn, byte for byte', async () => {
    const s = await harness().pool.acquire(threadId());
    const text = fenced(4000, 3);
    const r = await s.prompt(text);
    const body = text.slice('fake:sha'.length);
    const { createHash } = await import('node:crypto');
    expect(r.text).toBe(`sha256 ${createHash('sha256').update(body).digest('hex')} chars ${body.length}`);
    expect((await s.prompt('next')).text).toBe('You said: next');
  });

  it('a message ending in a backslash, or with keys kiro binds (Tab, Ctrl-T, Ctrl-S), arrives as one plain turn', async () => {
    const s = await harness().pool.acquire(threadId());
    expect((await s.prompt('fake:echo path C:\\')).text).toBe('received: "fake:echo path C:\\\\"');
    // Control characters are dropped; a Tab (which would complete) becomes spaces.
    expect((await s.prompt('fake:raw a\tb\x14c\x13d\x16e\x1af')).text).toBe('raw: "fake:raw a    bcdef"');
    expect((await s.prompt('fake:startup')).text).toContain('keys none');
  });

  it('a user’s !touch marker-file, also after a space, never runs a shell and reaches the model as text', async () => {
    const s = await harness().pool.acquire(threadId());
    const r = await s.prompt('!touch marker-file');
    expect(r.text).toContain('!touch marker-file');
    expect((await s.prompt('  !touch marker-two')).text).toContain('!touch marker-two');
    expect((await s.prompt('\u200b!touch marker-three')).text).toContain('!touch marker-three');
    for (const f of ['marker-file', 'marker-two', 'marker-three'])
      expect(existsSync(join(s.cwd, f))).toBe(false);
  });

  it('a user’s /tools trust-all, /quit, /clear and /editor are text: trust unchanged, session alive', async () => {
    const s = await harness().pool.acquire(threadId());
    expect((await s.prompt('/tools trust-all')).text).toContain('/tools trust-all');
    expect((await s.prompt('fake:trust')).text).toBe('trust-all false; trusted none');
    expect((await s.prompt('/quit')).text).toContain('/quit');
    expect((await s.prompt('/clear')).text).toContain('/clear');
    expect((await s.prompt('/editor')).text).toContain('/editor');
    expect(s.state).toBe('idle');
    expect((await s.prompt('still there?')).text).toBe('You said: still there?');
  });

  it('a user’s @secret is not inlined, at the start or after a space', async () => {
    const hh = harness();
    const s = await hh.pool.acquire(threadId());
    await s.ready;
    writeFileSync(join(s.cwd, 'secret'), 'the secret value');
    mkdirSync(join(s.cwd, '.kiro', 'prompts'), { recursive: true });
    writeFileSync(join(s.cwd, '.kiro', 'prompts', 'secret.md'), 'fake:echo a saved prompt ran');
    for (const text of ['@secret', 'read @secret please', 'two\nlines @secret']) {
      const r = await s.prompt(text);
      expect(r.text, text).not.toContain('the secret value');
      expect(r.text, text).not.toContain('a saved prompt ran');
      expect(r.text, text).toContain('@secret');
    }
  });

  it('a reply with a fenced block arrives fenced, with its backticks and markdown as written', async () => {
    const s = await harness().pool.acquire(threadId());
    const r = await s.prompt('fake:markdown');
    expect(r.text).toBe(
      '# Title\nUse `npm test` and **bold** and *italic* words.\n> a quoted line\n- item one\n```js\nconst x = 1;\n```\nafter the block',
    );
  });

  it('a paragraph longer than the terminal width arrives unbroken', async () => {
    const s = await harness().pool.acquire(threadId());
    const r = await s.prompt('fake:paragraph 900');
    expect(r.text).not.toContain('\n');
    expect(r.text.length).toBeGreaterThan(900);
    expect(r.text).toMatch(/^the0 quick1 .* \w+\d+\.$/);
  });

  it('writes the workspace settings before spawn: markdown, hints and granular trust off', async () => {
    const s = await harness().pool.acquire(threadId());
    await s.ready;
    const settings = JSON.parse(readFileSync(join(s.cwd, '.kiro', 'settings', 'cli.json'), 'utf8'));
    expect(settings).toMatchObject({
      'chat.disableMarkdownRendering': true,
      'chat.enablePromptHints': false,
      'chat.disableGranularTrust': true,
    });
  });

  it('asks the tool-naming permission question; "always" trusts without the arrow-key menu', async () => {
    const s = await harness().pool.acquire(threadId());
    const asked = new Promise<PermissionRequest>((resolve) => s.once('permission', resolve));
    const turn = s.prompt('fake:permission');
    const q = await asked;
    expect(q.title).toContain("the 'shell' tool");
    const always = q.options.find((o) => o.kind === 'allow_always')!.optionId;
    expect(s.answerPermission(q.requestId, always)).toBe(true);
    expect((await turn).text).toContain('Ran pwd');
    expect((await s.prompt('fake:permission')).text).toContain('Ran pwd');
    expect((await s.prompt('fake:trust')).text).toBe('trust-all false; trusted shell');
  });

  it('the automatic summary turn of -r is not taken for the first message’s reply', async () => {
    const hh = harness();
    const id = threadId();
    const first = await hh.pool.acquire(id);
    await first.prompt('remember me');
    await hh.pool.close(id, 'reset');
    const second = await hh.pool.acquire(id);
    const r = await second.prompt('fake:history');
    expect(r.text).toBe('remember me\nfake:history');
  });

  it('the not-logged-in menu ends the start at once as spawn_failed, saying what to do', async () => {
    const hh = harness({ KIRO_FAKE_STARTUP: 'not-logged-in' });
    const s = await hh.pool.acquire(threadId());
    const t0 = performance.now();
    const err = (await s.ready.catch((e: unknown) => e)) as SpawnFailedError;
    expect(err).toBeInstanceOf(SpawnFailedError);
    expect(err.output).toContain('not logged in');
    // Far from the 60 s spawn timeout: the menu waits for a key forever.
    expect(performance.now() - t0).toBeLessThan(10_000);
    await waitFor(() => hh.row(s.id)?.endReason === 'spawn_failed', 'the spawn_failed row');
  });
});
