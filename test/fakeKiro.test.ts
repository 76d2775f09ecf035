// biome-ignore-all lint/suspicious/noControlCharactersInRegex: the screen bytes under test are escape sequences.
import { execFileSync, spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import * as pty from 'node-pty';
import { afterEach, describe, expect, it } from 'vitest';
import { type ProcInfo, readProc } from '../src/process/procfs.js';
import { waitFor } from './helpers/wait.js';

// The fake kiro-cli must draw what shared/kiro-cli.md says the real one draws, byte for byte, and have the
// real one's process tree. These tests drive it in a real pty, as the bot does.

const FAKE = fileURLToPath(new URL('./fixtures/fake-kiro/kiro-cli', import.meta.url));
const OPEN = '\x1b[?2004h';
const CLOSE = '\x1b[?2004l\r\n';
/** The prompt of a read with the context indicator at `pct` (and `before` pieces such as the agent name). */
function prompt(
  pct = 1,
  pieces = '',
  width = `${pct}% > `.length + [...pieces.replace(/\x1b\[[0-9;]*m/g, '')].length,
) {
  return `${OPEN}\r\x1b[K${pieces}\x1b[32m${pct}% \x1b[0m\x1b[38;5;93m> \x1b[0m\r\x1b[${width}C`;
}
const REPLY = '\x1b[38;5;141m> \x1b[0m';
const MD_END = '\x1b[0m\x1b[0m';
const SUMMARY = '\r\n\r\n\x1b[38;5;8m\r\n ▸ Credits: 0.04 • Time: 0s\r\n\r\n\x1b[0m\x1b[?25h';
const HINT = '\x1b[38;5;240mHow can I help?\x1b[m';
const EXIT_HINT =
  '\r\n(To exit the CLI, press Ctrl+C or Ctrl+D again or type \x1b[38;5;141m/quit\x1b[0m)\r\n\r\n';
const ALLOW =
  "\r\n\x1b[38;5;244mAllow this action? Use '\x1b[38;5;13mt\x1b[38;5;244m' to trust (always allow) the '\x1b[38;5;13mshell\x1b[38;5;244m' tool for the session. [\x1b[38;5;13my\x1b[38;5;244m/\x1b[38;5;13mn\x1b[38;5;244m/\x1b[38;5;13mt\x1b[38;5;244m]:\x1b[0m\r\n\r\n";
const QUICK = { KIRO_FAKE_THINK_MS: '0' };

/** Whether the output ends inside an open read with its prompt drawn (what the bot waits for). */
function awaitingInput(s: string): boolean {
  return s.lastIndexOf(OPEN) > s.lastIndexOf('\x1b[?2004l') && /\r\x1b\[\d+C$/.test(s);
}

/** What a screen shows once colours and cursor moves are gone: for checks that are about text, not bytes. */
function plain(s: string): string {
  return s.replace(/\r\x1b\[\d+C$/, '').replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '');
}

/** A pid with its start time, so cleanup never signals a recycled pid. */
interface Known {
  readonly pid: number;
  readonly startTime: number;
}

const known: Known[] = [];
const terms: pty.IPty[] = [];
const dirs: string[] = [];

function learn(pid: number): ProcInfo {
  const info = readProc(pid);
  if (!info) throw new Error(`pid ${pid} is not running`);
  known.push({ pid, startTime: info.startTime });
  return info;
}

/** Alive means present with the same start time and not a zombie (this container's init may never reap). */
function isAlive(k: Known): boolean {
  const info = readProc(k.pid);
  return info !== undefined && info.startTime === k.startTime && info.state !== 'Z' && info.state !== 'X';
}

/** Direct children of `pid`, from every thread's children list (node forks from more than one thread). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim();
      if (text) out.push(...text.split(' ').map(Number));
    }
  } catch {
    // gone
  }
  return out;
}

/** Asserts that `k` stays alive for `ms` (survival can only be shown over a window). */
async function staysAlive(k: Known, ms: number): Promise<void> {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    expect(isAlive(k), `pid ${k.pid} alive`).toBe(true);
    await sleep(20);
  }
}

afterEach(async () => {
  for (const t of terms.splice(0)) {
    try {
      t.kill('SIGKILL');
    } catch {
      // already exited
    }
  }
  const pids = known.splice(0);
  for (const k of pids.filter(isAlive)) {
    try {
      process.kill(k.pid, 'SIGKILL');
    } catch {
      // gone in between
    }
  }
  await waitFor(() => pids.every((k) => !isAlive(k)), 'every process of the test to be gone', 5000);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

interface TermOptions {
  readonly args?: string[];
  readonly env?: Record<string, string>;
  readonly cwd?: string;
  readonly cols?: number;
  /** Answer the start-up cursor-position probes like a terminal (default true). */
  readonly answerProbes?: boolean;
}

class FakeTerm {
  output = '';
  exit: { exitCode: number; signal?: number | undefined } | undefined;
  readonly term: pty.IPty;
  readonly cwd: string;
  readonly spawnedAt = performance.now();
  readonly wrapper: Known;

  constructor(o: TermOptions = {}) {
    this.cwd = o.cwd ?? mkdtempSync(join(tmpdir(), 'fake-kiro-'));
    if (!o.cwd) dirs.push(this.cwd);
    this.term = pty.spawn(FAKE, o.args ?? ['chat', '--legacy-ui'], {
      name: 'xterm-256color',
      cols: o.cols ?? 120,
      rows: 40,
      cwd: this.cwd,
      env: { PATH: process.env.PATH ?? '', HOME: this.cwd, ...o.env },
    });
    terms.push(this.term);
    this.wrapper = learn(this.term.pid);
    const answer = o.answerProbes ?? true;
    this.term.onData((d) => {
      this.output += d;
      if (answer && d.includes('\x1b[6n')) this.term.write('\x1b[1;1R');
    });
    this.term.onExit((e) => {
      this.exit = e;
    });
  }

  get pid(): number {
    return this.term.pid;
  }

  /** Waits until the output after `from` contains `what` (or matches it); returns the output after `from`. */
  async waitFor(what: string | RegExp, from = 0, timeoutMs = 5000): Promise<string> {
    const found = () => {
      const s = this.output.slice(from);
      return (typeof what === 'string' ? s.includes(what) : what.test(s)) ? s : undefined;
    };
    return waitFor(
      found,
      `${JSON.stringify(String(what))} in ${JSON.stringify(this.output.slice(from))}`,
      timeoutMs,
    );
  }

  /** Waits until the output after `from` ends inside an open read (the agent waits for input again). */
  async waitRead(from = 0, timeoutMs = 5000): Promise<string> {
    return waitFor(
      () => {
        const s = this.output.slice(from);
        return awaitingInput(s) ? s : undefined;
      },
      `a read after ${JSON.stringify(this.output.slice(from))}`,
      timeoutMs,
    );
  }

  async ready(): Promise<number> {
    await this.waitRead(0);
    return performance.now() - this.spawnedAt;
  }

  /** Types `text` and Enter, waits for the next read; returns everything drawn after the typing began. */
  async turn(text: string): Promise<string> {
    const from = this.output.length;
    this.term.write(`${text}\r`);
    return this.waitRead(from);
  }

  /** A turn whose reply text (between the reply prefix and the summary) is returned without colours. */
  async reply(text: string): Promise<string> {
    const drawn = await this.turn(text);
    const at = drawn.lastIndexOf(REPLY);
    const end = drawn.lastIndexOf('\r\n\r\n\x1b[38;5;8m');
    return drawn.slice(at + REPLY.length, end > at ? end : undefined);
  }

  async exited(timeoutMs = 5000): Promise<{ exitCode: number; signal?: number | undefined }> {
    return waitFor(() => this.exit, `exit of pid ${this.pid}`, timeoutMs);
  }

  /** The kiro-cli-chat child of the wrapper, learnt for cleanup. */
  async chat(): Promise<ProcInfo> {
    const pid = await waitFor(() => childrenOf(this.pid)[0], `the chat child of ${this.pid}`);
    return learn(pid);
  }
}

/** A workspace with `.kiro/settings/cli.json` holding `settings`, as the bot writes it. */
function workspace(settings: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'fake-kiro-ws-'));
  dirs.push(dir);
  mkdirSync(join(dir, '.kiro', 'settings'), { recursive: true });
  writeFileSync(join(dir, '.kiro', 'settings', 'cli.json'), JSON.stringify(settings));
  return dir;
}

/** Every pid in a reply such as "spawned many 12 13 14", learnt for cleanup. */
function reported(reply: string, kind: string): number[] {
  const m = new RegExp(`${kind} ([\\d ]+)`).exec(reply);
  if (!m) throw new Error(`no "${kind} <pids>" in ${JSON.stringify(reply)}`);
  const pids = m[1]!.trim().split(' ').map(Number);
  for (const pid of pids) learn(pid);
  return pids;
}

describe('fake kiro-cli chat --legacy-ui in a pty: the screen of kiro-cli 2.x', () => {
  it('starts with the mcp live line, two cursor probes, the banner, then a read with the grey hint', async () => {
    const t = new FakeTerm();
    const ms = await t.ready();
    console.log(`fake kiro-cli: spawn to prompt ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(2000);
    expect(t.output).toMatch(
      /^\r⠋ 0 of 1 mcp servers initialized\. ctrl-c to start chatting now\r\x1b\[2K✓ /,
    );
    expect(t.output.split('\r\x1b[6n').length - 1).toBe(2);
    expect(t.output).toContain('Kiro (fake 2.x)');
    expect(t.output.endsWith(`${OPEN}\r\x1b[K\x1b[32m0% \x1b[0m\x1b[38;5;93m> \x1b[0m${HINT}\r\x1b[5C`)).toBe(
      true,
    );
    // The terminal's output processing makes every line end CRLF; nothing is written as CR CR LF.
    expect(t.output).not.toContain('\r\r\n');
    expect(await t.reply('fake:startup')).toContain('probes answered 2 of 2; eaten ""');
  });

  it('waits half a second per unanswered probe, and swallows what is typed before the first read', async () => {
    const t = new FakeTerm({ answerProbes: false });
    t.term.write('early bird\r');
    const ms = await t.ready();
    expect(ms).toBeGreaterThanOrEqual(1000);
    // Bytes that arrive before the chat sets raw mode get the kernel's CR -> LF; either way they are gone.
    expect(await t.reply('fake:startup')).toMatch(/probes answered 0 of 2; eaten "early bird\\[rn]"/);
  });

  it('a turn: echo, read closed, spinner on stderr, purple reply prefix, grey summary, next read', async () => {
    const t = new FakeTerm();
    await t.ready();
    const drawn = await t.turn('hello agent');
    expect(drawn).toMatch(
      new RegExp(
        `^\\x1b\\[Khello agent${esc(CLOSE)}\\x1b\\[\\?25l(?:\\r[⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏] Thinking\\.\\.\\.)+\\x1b\\[2K\\x1b\\[1G\\x1b\\[\\?25h${esc(REPLY)}You said: hello agent${esc(MD_END + SUMMARY + prompt(1))}$`,
      ),
    );
    // The hint is gone after the first key: the second read has none.
    const edited = await t.turn('hellp\x7fo');
    expect(edited.startsWith(`hellp\b \bo${CLOSE}`)).toBe(true);
    expect(edited.endsWith(`You said: hello${MD_END}${SUMMARY}${prompt(2)}`)).toBe(true);
  });

  it('prompt pieces: agent name, context colour by use, λ, ↯ (Ctrl-T), ! for trust-all; summary without Credits', async () => {
    const t = new FakeTerm({
      args: ['chat', '--legacy-ui', '--agent', 'rev', '-a'],
      env: { ...QUICK, KIRO_FAKE_NO_CREDITS: '1', KIRO_FAKE_CONTEXT_PCT: '55', KIRO_FAKE_CODE_INTEL: '1' },
    });
    await t.ready();
    expect(t.output).toContain('All tools are now trusted (\x1b[31m!\x1b[0m).');
    const pieces = (pct: number, tangent: boolean) =>
      `${OPEN}\r\x1b[K\x1b[38;5;6m[rev] \x1b[0m\x1b[33m${pct}% \x1b[0m\x1b[38;5;39mλ \x1b[0m${tangent ? '\x1b[33m↯ \x1b[0m' : ''}\x1b[31m!\x1b[0m\x1b[38;5;93m> \x1b[0m`;
    expect(t.output).toContain(pieces(55, false));
    const drawn = await t.turn('\x14fake:permission');
    expect(drawn).not.toContain('Allow this action?');
    expect(drawn).toContain(`${REPLY}Ran pwd: ${t.cwd}`);
    expect(drawn).toContain('\x1b[38;5;8m\r\n ▸ Time: 0s\r\n\r\n\x1b[0m');
    expect(drawn).not.toContain('Credits');
    expect(drawn).toContain(pieces(56, true));
    expect(plain(drawn).endsWith('[rev] 56% λ ↯ !> ')).toBe(true);
    const red = new FakeTerm({
      args: ['chat', '--legacy-ui', '--agent', 'plan'],
      env: { KIRO_FAKE_CONTEXT_PCT: '95' },
    });
    await red.ready();
    expect(red.output).toContain(`${OPEN}\r\x1b[K\x1b[38;5;141m[plan] \x1b[0m\x1b[31m95% \x1b[0m`);
  });

  it('kiro-cli 1.x (KIRO_FAKE_VERSION=1) opens replies in green', async () => {
    const t = new FakeTerm({ env: { ...QUICK, KIRO_FAKE_VERSION: '1' } });
    await t.ready();
    expect(await t.turn('hi')).toContain('\x1b[38;5;10m> \x1b[0mYou said: hi');
  });

  it('the workspace settings file turns off the hint, the context indicator, markdown and the greeting, and wins over HOME', async () => {
    const cwd = workspace({
      'chat.enablePromptHints': false,
      'chat.enableContextUsageIndicator': false,
      'chat.disableMarkdownRendering': true,
      'chat.greeting.enabled': false,
    });
    mkdirSync(join(cwd, 'home', '.kiro', 'settings'), { recursive: true });
    writeFileSync(
      join(cwd, 'home', '.kiro', 'settings', 'cli.json'),
      JSON.stringify({ 'chat.enablePromptHints': true, 'chat.disableMarkdownRendering': false }),
    );
    const t = new FakeTerm({ cwd, env: { ...QUICK, HOME: join(cwd, 'home') } });
    await t.ready();
    expect(t.output.endsWith(`${OPEN}\r\x1b[K\x1b[38;5;93m> \x1b[0m\r\x1b[2C`)).toBe(true);
    expect(t.output).not.toContain('Kiro (fake');
    const drawn = await t.turn('fake:markdown');
    expect(drawn).toContain(
      `${REPLY}# Title\r\nUse \`npm test\` and **bold** and *italic* words.\r\n> a quoted line\r\n- item one\r\n\`\`\`js\r\nconst x = 1;\r\n\`\`\`\r\nafter the block\r\n`,
    );
    // Stripped of colour, the reply prefix and the bare prompt are the same text.
    expect(plain(drawn).endsWith('after the block\r\n\r\n\r\n ▸ Credits: 0.04 • Time: 0s\r\n\r\n\r> ')).toBe(
      true,
    );
  });

  it('renders markdown when the setting is absent: fences dropped, language bold, code green, no backticks, │ quotes', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    const body = await t.reply('fake:markdown');
    expect(body).toBe(
      `# Title${MD_END}\r\nUse \x1b[38;5;10mnpm test\x1b[0m and \x1b[1mbold\x1b[22m and \x1b[3mitalic\x1b[23m words.${MD_END}\r\n│ a quoted line${MD_END}\r\n- item one${MD_END}\r\n\x1b[1mjs\x1b[22m\r\n\x1b[38;5;10mconst x = 1;\x1b[0m\r\nafter the block${MD_END}`,
    );
    expect(plain(body)).not.toContain('```');
  });

  it('hard-wraps a long paragraph at the terminal width (first row two columns less), not with -w never', async () => {
    const t = new FakeTerm({ env: QUICK, cols: 40 });
    await t.ready();
    const rows = plain(await t.reply('fake:paragraph 200')).split('\r\n');
    expect(rows.length).toBeGreaterThan(4);
    expect(rows[0]!.length).toBeLessThanOrEqual(38);
    for (const r of rows) expect(r.length).toBeLessThanOrEqual(40);
    const n = new FakeTerm({ args: ['chat', '--legacy-ui', '-w', 'never'], env: QUICK, cols: 40 });
    await n.ready();
    const one = plain(await n.reply('fake:paragraph 200'));
    expect(one).not.toContain('\n');
    expect(one.length).toBeGreaterThan(200);
  });

  it('Enter inserts a newline while the text has an odd number of ``` or ends in ; Ctrl-J always does', async () => {
    const t = new FakeTerm({ env: QUICK, cwd: workspace({ 'chat.disableMarkdownRendering': true }) });
    await t.ready();
    let from = t.output.length;
    t.term.write('fake:echo ```\r');
    t.term.write('code\r');
    await t.waitFor('code\r\n', from);
    // Still the same read: Enter did not submit while the fence was open.
    expect(t.output.slice(from)).not.toContain('\x1b[?2004l');
    expect(await t.reply('``` done')).toBe('received: "fake:echo ```\\ncode\\n``` done"');
    from = t.output.length;
    t.term.write('fake:echo ends in \\\r');
    await t.waitFor('\\\r\n', from);
    expect(t.output.slice(from)).not.toContain('\x1b[?2004l');
    expect(await t.reply('next\nline')).toBe('received: "fake:echo ends in \\\\\\nnext\\nline"');
  });

  it('a bracketed paste is inserted literally: CR, LF and CRLF are newlines, Ctrl-C inside does nothing, markers may arrive split', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    const from = t.output.length;
    t.term.write('\x1b[200~fake:echo\r\nline one\rline');
    t.term.write(' two\n\x03end 👍\x1b[20');
    t.term.write('1~');
    t.term.write('\r');
    const drawn = await t.waitRead(from);
    expect(drawn).toContain(`received: ${JSON.stringify('fake:echo\nline one\nline two\n\x03end 👍')}`);
    expect(drawn.split('Credits').length - 1).toBe(1);
    expect(drawn.split(OPEN).length - 1).toBe(1);
  });

  it('asks permission naming the tool: y runs it, n denies it, other text is sent instead', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    const question = `I will run the following command: \x1b[38;5;141mpwd\x1b[0m\x1b[38;5;244m (using tool: shell)\x1b[0m\r\n${ALLOW}${prompt(0)}`;
    expect((await t.turn('fake:permission')).endsWith(question)).toBe(true);
    const yes = await t.turn('y');
    expect(yes).toContain(`${t.cwd}\r\n\x1b[38;5;244m - Completed in 0.3s\x1b[0m\r\n\r\n`);
    expect(yes).toContain(`${REPLY}Ran pwd: ${t.cwd}${MD_END}${SUMMARY}`);
    await t.turn('fake:tool');
    expect(await t.turn('n')).toContain(`${REPLY}Tool use was denied.`);
    await t.turn('fake:tool');
    expect(await t.reply('something else')).toContain('You said: something else');
  });

  it('t opens an arrow-key trust menu (no read markers) unless chat.disableGranularTrust is true', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    await t.turn('fake:permission');
    const from = t.output.length;
    t.term.write('t\r');
    const menu = await t.waitFor('Cancel', from);
    expect(menu).toContain('Trust shell for this session:');
    expect(menu.slice(menu.indexOf(CLOSE) + CLOSE.length)).not.toContain(OPEN);
    t.term.write('\x1b[B\r');
    await t.waitRead(from);
    expect(await t.reply('fake:trust')).toContain('trusted shell');
    const direct = new FakeTerm({ env: QUICK, cwd: workspace({ 'chat.disableGranularTrust': true }) });
    await direct.ready();
    await direct.turn('fake:permission');
    expect(await direct.turn('t')).toContain(`Ran pwd: ${direct.cwd}`);
    expect(await direct.turn('fake:permission')).not.toContain('Allow this action?');
  });

  it('dispatch: a leading ! runs a real shell, also after spaces or a zero-width space; a visible prefix makes it text', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    await t.turn('!touch one');
    await t.turn('   !touch two');
    await t.turn('\u200b!touch three');
    expect(
      existsSync(join(t.cwd, 'one')) && existsSync(join(t.cwd, 'two')) && existsSync(join(t.cwd, 'three')),
    ).toBe(true);
    expect(await t.reply('·!touch four')).toContain('You said: ·!touch four');
    expect(existsSync(join(t.cwd, 'four'))).toBe(false);
  });

  it('dispatch: /tools trust-all trusts at once, unknown commands are not sent, a path-like word loses its /', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    const trust = await t.turn('/tools trust-all');
    expect(trust).toContain('All tools are now trusted');
    expect(plain(trust).endsWith('0% !> ')).toBe(true);
    expect(await t.reply('fake:trust')).toContain('trust-all true');
    const unknown = await t.turn('/nonsense here');
    expect(unknown).toContain('Unknown command: /nonsense');
    expect(unknown).not.toContain(REPLY);
    expect(await t.reply('/usr/bin/env is a path')).toContain('You said: usr/bin/env is a path');
  });

  it('dispatch: @file after whitespace is inlined, a leading @name runs a saved prompt, /editor opens vi', async () => {
    const t = new FakeTerm({ env: QUICK });
    writeFileSync(join(t.cwd, 'secret'), 'the secret value');
    mkdirSync(join(t.cwd, '.kiro', 'prompts'), { recursive: true });
    writeFileSync(join(t.cwd, '.kiro', 'prompts', 'greet.md'), 'fake:echo from the saved prompt');
    await t.ready();
    expect(await t.reply('fake:echo read @secret')).toContain('the secret value');
    expect(await t.reply('fake:echo read x@secret')).not.toContain('the secret value');
    expect(await t.reply('@greet')).toContain('received: "fake:echo from the saved prompt"');
    const from = t.output.length;
    t.term.write('/editor\r');
    await t.waitFor('\x1b[?1049h', from);
    t.term.write(':q\r');
    await t.waitRead(from);
    expect(t.output.slice(from)).toContain('\x1b[?1049l');
  });

  it('/clear asks [y/n] at a read; /quit, /exit, Ctrl-D exit 0', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    const asked = await t.turn('/clear');
    expect(plain(asked)).toContain('This will erase the conversation history. [y/n]:');
    expect(await t.turn('y')).toContain('Conversation history cleared.');
    for (const keys of ['/quit\r', '/exit\r', '\x04']) {
      const q = new FakeTerm();
      await q.ready();
      q.term.write(keys);
      expect(await q.exited()).toMatchObject({ exitCode: 0 });
    }
  });

  it('input typed during a turn is echoed and arrives at the next read as new lines, not as Enter', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    const from = t.output.length;
    t.term.write('fake:silent 300\r');
    await t.waitFor(CLOSE, from);
    t.term.write('queued\r');
    // The cooked terminal echoes it at once, mid-turn.
    await t.waitFor(`${CLOSE}queued\r\n`, from);
    // At the next read the queued text waits in the editor, ended by a newline, and the read stays open.
    const drawn = await t.waitFor(/\x1b\[\?2004h[^\x1b]*\x1b\[K[\s\S]*\r\x1b\[\d+Cqueued\r\n$/, from);
    expect(drawn.split(OPEN).length - 1).toBe(1);
    expect(await t.reply('')).toBe(`You said: queued${MD_END}`);
  });

  it('Ctrl-C cancels a hanging turn (^C, two newlines, no summary); at a read it prints the hint, twice exits 0', async () => {
    const t = new FakeTerm();
    await t.ready();
    let from = t.output.length;
    t.term.write('fake:hang\r');
    await t.waitFor('Thinking...', from);
    const t0 = performance.now();
    t.term.write('\x03');
    const drawn = await t.waitRead(from);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(drawn).toMatch(new RegExp(`Thinking\\.\\.\\.\\^C\\r\\n\\r\\n\\x1b\\[\\?25h${esc(prompt(0))}$`));
    expect(drawn).not.toContain('Credits');
    from = t.output.length;
    t.term.write('\x03');
    expect(await t.waitRead(from)).toBe(`\x1b[?2004l\r\n${EXIT_HINT}${prompt(0)}`);
    t.term.write('\x03');
    expect(await t.exited()).toMatchObject({ exitCode: 0 });
  });
});

describe('fake kiro-cli test behaviours', () => {
  it('fake:flood writes every numbered line through a paused reader (backpressure), then ends the turn', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    const from = t.output.length;
    t.term.write('fake:flood 1\r');
    await t.waitFor('flood line 000000000', from);
    // The kernel's pty buffer fills while nobody reads: the fake blocks instead of dropping output.
    t.term.pause();
    // A window, not a wait for output: while nobody reads, the fake's writes block instead of dropping lines.
    await sleep(100);
    t.term.resume();
    const drawn = await t.waitRead(from, 10_000);
    const numbers = [...drawn.matchAll(/flood line (\d{9}) x{77}\r\n/g)].map((m) => Number(m[1]));
    const done = /flood done: (\d+) lines/.exec(drawn);
    expect(Number(done![1])).toBe(numbers.length);
    expect(numbers).toEqual(numbers.map((_, i) => i));
    expect(numbers.length * 100).toBeGreaterThanOrEqual(1024 * 1024);
    expect(drawn).toMatch(new RegExp(`flood done: \\d+ lines${esc(SUMMARY)}`));
  });

  it('fake:spin 0 burns CPU in slices, so Ctrl-C and SIGINT still cancel it promptly', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    const chat = await t.chat();
    for (const cancel of [() => t.term.write('\x03'), () => process.kill(chat.pid, 'SIGINT')]) {
      const from = t.output.length;
      t.term.write('fake:spin 0\r');
      const cpu0 = readProc(chat.pid)!.cpuTicks;
      await waitFor(() => readProc(chat.pid)!.cpuTicks >= cpu0 + 10, 'the chat to burn 100 ms of CPU');
      const t0 = performance.now();
      cancel();
      expect(await t.waitRead(from)).toMatch(/\r\n\r\n\x1b\[\?25h\x1b\[\?2004h[\s\S]*\r\x1b\[\d+C$/);
      expect(performance.now() - t0).toBeLessThan(500);
    }
  });

  it('fake:hold N makes the chat resident by N MB; fake:hold-child N does it in a child that stays', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    const chat = await t.chat();
    const before = readProc(chat.pid)!.rssPages;
    expect(await t.reply('fake:hold 64')).toBe(`holding 64 MB${MD_END}`);
    expect((readProc(chat.pid)!.rssPages - before) * 4096).toBeGreaterThan(60 * 1024 * 1024);
    const [holder] = reported(await t.turn('fake:hold-child 32'), 'holding 32 MB in');
    await waitFor(
      () => (readProc(holder!)?.rssPages ?? 0) * 4096 > 32 * 1024 * 1024,
      'the child to hold 32 MB',
    );
    expect(readProc(holder!)!.ppid).toBe(chat.pid);
  });

  it('fake:echo and fake:hex report the exact text received; fake:mentions and fake:long are deterministic', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    // The model gets the line trimmed, inner spaces kept.
    expect(await t.reply(' fake:echo  two  spaces ')).toBe(
      `received: ${JSON.stringify('fake:echo  two  spaces')}${MD_END}`,
    );
    expect(await t.reply('fake:hex é')).toBe(`${Buffer.from('fake:hex é').toString('hex')}${MD_END}`);
    expect(await t.reply('fake:raw a\x01b\x1b[Dc')).toBe(
      `raw: ${JSON.stringify('fake:raw a\x01b\x1b[Dc')}${MD_END}`,
    );
    const mentions = await t.turn('fake:mentions');
    expect(mentions).toContain('@everyone @here <@123456789012345678> <@&123456789012345679>');
    expect(plain(mentions)).toMatch(/\r\nx{100,120}\r\nx{100,120}\r\n/);
    const long = await t.reply('fake:long 3000');
    expect(long).toBe(await t.reply('fake:long 3000'));
    const raw = new FakeTerm({ env: QUICK, cwd: workspace({ 'chat.disableMarkdownRendering': true }) });
    await raw.ready();
    const body = await raw.reply('fake:long 3000');
    expect(body.length).toBeGreaterThanOrEqual(3000);
    expect(body).toMatch(/^line 0: /);
    expect(body).toMatch(/\r\n```js\r\nconst line\d+ = \d+;.*\r\n```\r\nline \d+: /s);
  });

  it('fake:crash exits 1 mid-turn and fake:crash-signal dies by SIGKILL; the wrapper reports both', async () => {
    const crash = new FakeTerm({ env: QUICK });
    await crash.ready();
    crash.term.write('fake:crash\r');
    expect(await crash.exited()).toMatchObject({ exitCode: 1 });
    expect(crash.output).toContain(`${REPLY}partial output`);
    expect(plain(crash.output).endsWith('partial output\r\n')).toBe(true);
    const killed = new FakeTerm({ env: QUICK });
    await killed.ready();
    killed.term.write('fake:crash-signal\r');
    expect(await killed.exited()).toMatchObject({ exitCode: 128 + 9 });
  });

  it('KIRO_FAKE_IGNORE_TERM=1 and fake:ignore-term make the chat ignore SIGTERM', async () => {
    const t = new FakeTerm({ env: { KIRO_FAKE_IGNORE_TERM: '1' } });
    await t.ready();
    const chat = await t.chat();
    process.kill(chat.pid, 'SIGTERM');
    await staysAlive(chat, 200);
    const u = new FakeTerm({ env: QUICK });
    await u.ready();
    const late = await u.chat();
    expect(await u.reply('fake:ignore-term')).toBe(`ignoring SIGTERM${MD_END}`);
    process.kill(late.pid, 'SIGTERM');
    await staysAlive(late, 200);
  });
});

interface EditorHooks {
  echo(s: string): void;
  onLine(text: string, raw: string): boolean;
  onInterrupt(count: number): boolean;
  onEof(): void;
}
const { LineEditor } = createRequire(import.meta.url)('./fixtures/fake-kiro/lineEditor.js') as {
  LineEditor: new (hooks: EditorHooks) => { feed(input: string): string };
};

describe('fake kiro-cli line editor', () => {
  /** Feeds `input` cut into two chunks at `cut`; returns the lines entered and everything echoed. */
  function typeSplit(input: string, cut: number) {
    const lines: { text: string; raw: string }[] = [];
    let echoed = '';
    const editor = new LineEditor({
      echo: (s) => {
        echoed += s;
      },
      onLine: (text, raw) => {
        lines.push({ text, raw });
        return true;
      },
      onInterrupt: () => true,
      onEof: () => {},
    });
    expect(editor.feed(input.slice(0, cut))).toBe('');
    expect(editor.feed(input.slice(cut))).toBe('');
    return { lines, echoed };
  }

  it('decodes a bracketed paste cut at any position into one line', () => {
    const input = '\x1b[200~fake:echo a\r\nb\rc\nd👍\x1b[201~\r';
    for (let cut = 0; cut <= input.length; cut++) {
      const { lines, echoed } = typeSplit(input, cut);
      expect(lines, `cut at ${cut}`).toEqual([
        { text: 'fake:echo a\nb\nc\nd👍', raw: 'fake:echo a\nb\nc\nd👍' },
      ]);
      // The editor writes bare LF; the terminal's output processing adds the CR.
      expect(echoed, `cut at ${cut}`).toBe('fake:echo a\nb\nc\nd👍');
    }
  });

  it('Enter adds a line while the fences are unbalanced or the text ends in a backslash', () => {
    const input = 'a ```\rb\r``` c\\\rd\r';
    for (let cut = 0; cut <= input.length; cut++) {
      expect(typeSplit(input, cut).lines, `cut at ${cut}`).toEqual([
        { text: 'a ```\nb\n``` c\\\nd', raw: 'a ```\nb\n``` c\\\nd' },
      ]);
    }
  });

  it('keeps keyboard escape sequences and control bytes out of the line but in the raw bytes', () => {
    const input = 'ab\x1b[Dc\x00d\x7fe\x14\tf\r';
    for (let cut = 0; cut <= input.length; cut++) {
      expect(typeSplit(input, cut).lines, `cut at ${cut}`).toEqual([
        { text: 'abcef', raw: 'ab\x1b[Dc\x00d\x7fe\x14\tf' },
      ]);
    }
  });

  it('stops at a line when asked, and hands back the rest as typeahead', () => {
    const editor = new LineEditor({
      echo: () => {},
      onLine: () => false,
      onInterrupt: () => true,
      onEof: () => {},
    });
    expect(editor.feed('first\rsecond\r')).toBe('second\r');
  });
});

describe('fake kiro-cli process tree', () => {
  it('the pty child is the wrapper, and kiro-cli-chat is its child in the same group and session', async () => {
    const t = new FakeTerm();
    await t.ready();
    const wrapper = readProc(t.pid)!;
    const chat = await t.chat();
    expect(wrapper.comm).toBe('kiro-cli');
    expect(chat.comm).toBe('kiro-cli-chat');
    expect(chat.ppid).toBe(t.pid);
    expect(chat.pgid).toBe(wrapper.pgid);
    expect(chat.sid).toBe(wrapper.sid);
    expect(wrapper.sid).toBe(t.pid);
    expect(await t.reply('fake:pid')).toBe(`pid ${chat.pid} ppid ${t.pid}${MD_END}`);
  });

  it('SIGTERM to the wrapper alone orphans kiro-cli-chat: mid-turn it outlives even the hangup', async () => {
    const t = new FakeTerm();
    await t.ready();
    const chat = await t.chat();
    const from = t.output.length;
    t.term.write('fake:hang\r');
    await t.waitFor('Thinking...', from);
    process.kill(t.pid, 'SIGTERM');
    // node-pty reports the exit once it has closed the terminal: the chat has been hung up by then.
    expect((await t.exited()).signal).toBe(15);
    const orphan = { pid: chat.pid, startTime: chat.startTime };
    expect(readProc(chat.pid)!.ppid).not.toBe(t.pid);
    await staysAlive(orphan, 300);
  });

  it('an idle kiro-cli-chat survives the SIGHUP of its wrapper’s death, and exits when its terminal closes', async () => {
    const t = new FakeTerm();
    await t.ready();
    const chat = await t.chat();
    const orphan = { pid: chat.pid, startTime: chat.startTime };
    process.kill(t.pid, 'SIGTERM');
    // The wrapper is gone (reaped or a zombie) well before node-pty closes the terminal 200 ms later.
    await waitFor(() => !isAlive(t.wrapper), 'the wrapper to die');
    expect(isAlive(orphan)).toBe(true);
    await t.exited();
    await waitFor(() => !isAlive(orphan), 'the idle chat to exit after the hangup');
  });

  it('fake:spawn group: its own process group, the chat’s session', async () => {
    const t = new FakeTerm();
    await t.ready();
    const chat = await t.chat();
    const [pid] = reported(await t.turn('fake:spawn group'), 'spawned group');
    // python3 calls setpgid and then execs the sleeper: wait for the exec, not only for the fork.
    const child = await waitFor(() => {
      const p = readProc(pid!);
      return p?.comm === 'fake-group' ? p : undefined;
    }, 'the group sleeper');
    expect(child.pgid).toBe(child.pid);
    expect(child.pgid).not.toBe(chat.pgid);
    expect(child.sid).toBe(chat.sid);
  });

  it('fake:spawn setsid, doublefork, ignoreterm and many: where each child lives', async () => {
    const t = new FakeTerm({ env: QUICK });
    await t.ready();
    const chat = await t.chat();
    const [setsid] = reported(await t.turn('fake:spawn setsid'), 'spawned setsid');
    const [orphan] = reported(await t.turn('fake:spawn doublefork'), 'spawned doublefork');
    const [stubborn] = reported(await t.turn('fake:spawn ignoreterm'), 'spawned ignoreterm');
    const many = reported(await t.turn('fake:spawn many 3'), 'spawned many');
    expect(readProc(setsid!)!.sid).toBe(setsid);
    expect(readProc(orphan!)!.ppid).not.toBe(chat.pid);
    expect(readProc(orphan!)!.pgid).toBe(chat.pgid);
    expect(readProc(stubborn!)!.pgid).toBe(chat.pgid);
    expect(many).toHaveLength(3);
    for (const pid of many) expect(readProc(pid)!.ppid).toBe(chat.pid);
  });
});

describe('fake kiro-cli start-up and arguments', () => {
  it('not logged in, 2.x: a Yes/No menu, then "Login is required" and exit 1; 1.x and --no-interactive only say so', async () => {
    const t = new FakeTerm({ env: { KIRO_FAKE_STARTUP: 'not-logged-in' } });
    await t.waitFor('You are not logged in. Login now?');
    // A menu, not a read: no bracketed-paste marker, and it waits for a key.
    expect(t.output).not.toContain(OPEN);
    await staysAlive(t.wrapper, 200);
    t.term.write('\r');
    expect((await t.exited()).exitCode).toBe(1);
    expect(t.output).toContain('\x1b[31merror:\x1b[0m Login is required to use chat\r\n');
    const old = new FakeTerm({ env: { KIRO_FAKE_STARTUP: 'not-logged-in', KIRO_FAKE_VERSION: '1' } });
    expect((await old.exited()).exitCode).toBe(1);
    expect(plain(old.output)).toBe('error: You are not logged in, please log in with kiro-cli login\r\n');
    const batch = new FakeTerm({
      args: ['chat', '--no-interactive', 'hi'],
      env: { KIRO_FAKE_STARTUP: 'not-logged-in' },
    });
    expect((await batch.exited()).exitCode).toBe(1);
    expect(plain(batch.output)).toContain('Not logged in. Set the KIRO_API_KEY environment variable');
  });

  it('KIRO_FAKE_STARTUP=slow waits before the mcp line; never-ready draws the banner and no read', async () => {
    const slow = new FakeTerm({ env: { KIRO_FAKE_STARTUP: 'slow', KIRO_FAKE_STARTUP_DELAY_MS: '400' } });
    expect(await slow.ready()).toBeGreaterThanOrEqual(400);
    const never = new FakeTerm({ env: { KIRO_FAKE_STARTUP: 'never-ready' } });
    await never.waitFor('━\x1b[0m\r\n');
    // Absence can only be shown over a window.
    await staysAlive(never.wrapper, 300);
    expect(never.output).not.toContain(OPEN);
  });

  it.each([
    ['exit-at-once', 3, ''],
    ['bad-model', 1, "error: Model 'x' does not exist. Available models: claude-sonnet-4\r\n"],
  ])('KIRO_FAKE_STARTUP=%s exits %i', async (mode, code, text) => {
    const t = new FakeTerm({ env: { KIRO_FAKE_STARTUP: mode } });
    expect((await t.exited()).exitCode).toBe(code);
    expect(plain(t.output)).toBe(text);
  });

  it('-r with a conversation asks for a summary before the first read; fake:history lists the messages', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fake-kiro-resume-'));
    dirs.push(dir);
    writeFileSync(join(dir, '.kiro-fake-history'), 'stale from an older conversation\n');
    const first = new FakeTerm({ env: QUICK, cwd: dir });
    await first.ready();
    expect(first.output).not.toContain(REPLY);
    await first.turn('remember me');
    await first.turn('\x1b[200~two\r\nlines\x1b[201~');
    first.term.write('/quit\r');
    await first.exited();
    const second = new FakeTerm({ args: ['chat', '--legacy-ui', '-r'], env: QUICK, cwd: dir });
    await second.ready();
    const before = second.output.slice(0, second.output.indexOf(OPEN));
    expect(before).toContain(`${REPLY}We talked about 2 things.`);
    expect(before).toContain('Credits');
    expect(plain(await second.reply('fake:history'))).toBe('remember me\r\ntwo\r\nlines\r\nfake:history');
  });

  it('the wrapper prints its version, and refuses bad arguments with exit code 2', () => {
    expect(execFileSync(FAKE, ['--version'], { encoding: 'utf8' })).toBe('kiro-cli 2.2.0-fake\n');
    const bad = [
      ['nonsense'],
      ['chat', '--legacy-ui', '--bogus'],
      ['chat', '--agent'],
      ['chat', 'one', 'two'],
      ['chat', '-w', 'sometimes'],
    ];
    for (const args of bad) {
      const r = spawnSync(FAKE, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stderr, args.join(' ')).toMatch(/^error: /);
    }
  });
});

function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
