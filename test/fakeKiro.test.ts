import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
const PROMPT = '\x1b[36m[default]\x1b[35m> \x1b[39m';
const REPLY = '\x1b[38;5;10m> \x1b[39m';
const CREDITS = '\r\n\r\n▸ Credits: 0.04 • Time: 1s\r\n\r\n';
const MCP_LINE = '1 of 1 mcp servers initialized. ctrl-c to start chatting now\r\n';
const HINT = '(To exit the CLI, press Ctrl+C or Ctrl+D again or type /quit)';
const ALLOW = "Allow this action? Use 't' to trust (always allow) this tool for the session. [y/n/t]:";

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

class FakeTerm {
  output = '';
  exit: { exitCode: number; signal?: number | undefined } | undefined;
  readonly term: pty.IPty;
  readonly cwd: string;
  readonly spawnedAt = performance.now();
  readonly wrapper: Known;

  constructor(args: string[] = ['chat', '--legacy-ui'], env: Record<string, string> = {}, cwd?: string) {
    this.cwd = cwd ?? mkdtempSync(join(tmpdir(), 'fake-kiro-'));
    if (!cwd) dirs.push(this.cwd);
    this.term = pty.spawn(FAKE, args, {
      name: 'xterm-256color',
      cols: 120,
      rows: 40,
      cwd: this.cwd,
      env: { PATH: process.env.PATH ?? '', HOME: this.cwd, ...env },
    });
    terms.push(this.term);
    this.wrapper = learn(this.term.pid);
    this.term.onData((d) => {
      this.output += d;
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

  /** Waits until the output after `from` ends with `prompt` (the agent waits for input again). */
  async waitPrompt(from = 0, prompt = PROMPT, timeoutMs = 5000): Promise<string> {
    return waitFor(
      () => {
        const s = this.output.slice(from);
        return s.endsWith(prompt) ? s : undefined;
      },
      `the prompt after ${JSON.stringify(this.output.slice(from))}`,
      timeoutMs,
    );
  }

  async ready(prompt = PROMPT): Promise<number> {
    await this.waitPrompt(0, prompt);
    return performance.now() - this.spawnedAt;
  }

  /** Types `text` and Enter, waits for the prompt again; returns everything drawn after the typing began. */
  async turn(text: string, prompt = PROMPT): Promise<string> {
    const from = this.output.length;
    this.term.write(`${text}\r`);
    return this.waitPrompt(from, prompt);
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

/** Every pid in a reply such as "spawned many 12 13 14", learnt for cleanup. */
function reported(reply: string, kind: string): number[] {
  const m = new RegExp(`${kind} ([\\d ]+)`).exec(reply);
  if (!m) throw new Error(`no "${kind} <pids>" in ${JSON.stringify(reply)}`);
  const pids = m[1]!.trim().split(' ').map(Number);
  for (const pid of pids) learn(pid);
  return pids;
}

describe('fake kiro-cli chat --legacy-ui in a pty', () => {
  it('draws a banner, the mcp line, then the prompt, with CRLF as written (no output post-processing)', async () => {
    const t = new FakeTerm();
    const ms = await t.ready();
    console.log(`fake kiro-cli: spawn to prompt ${ms.toFixed(0)} ms`);
    expect(ms).toBeLessThan(2000);
    expect(t.output).toMatch(/^\r\n.*Kiro \(fake\)/);
    const mcp = t.output.indexOf(MCP_LINE);
    expect(mcp).toBeGreaterThan(0);
    expect(t.output.slice(mcp + MCP_LINE.length)).toBe(PROMPT);
    expect(t.output).not.toContain('\r\r\n');
  });

  it('a turn: echo, Thinking... redrawn then cleared, green reply prefix, Credits, prompt', async () => {
    const t = new FakeTerm();
    await t.ready();
    const drawn = await t.turn('hello agent');
    expect(drawn).toMatch(
      new RegExp(
        `^hello agent\\r\\n(?:\\rThinking\\.\\.\\.){2,4}\\r\\x1b\\[2K${esc(REPLY)}You said: hello agent${esc(CREDITS)}${esc(PROMPT)}$`,
      ),
    );
    // Backspace edits the line; the echo shows it.
    const edited = await t.turn('hellp\x7fo');
    expect(edited.startsWith('hellp\b \bo\r\n')).toBe(true);
    expect(edited).toContain(`${REPLY}You said: hello${CREDITS}`);
  });

  it('--agent, --trust-all-tools and KIRO_FAKE_NO_CREDITS change the prompt and the footer', async () => {
    const t = new FakeTerm(['chat', '--legacy-ui', '--agent', 'rev', '-a'], {
      KIRO_FAKE_NO_CREDITS: '1',
      KIRO_FAKE_THINK_MS: '0',
    });
    const prompt = '\x1b[36m[rev]\x1b[35m!> \x1b[39m';
    await t.ready(prompt);
    const drawn = await t.turn('fake:permission', prompt);
    expect(drawn).not.toContain('Allow this action?');
    expect(drawn).toContain(`${REPLY}Ran pwd: ${t.cwd}\r\n\r\n${prompt}`);
    expect(drawn).not.toContain('Credits');
  });

  it('a bracketed paste is one turn: CR, LF and CRLF inside are newlines, markers may arrive split', async () => {
    const t = new FakeTerm();
    await t.ready();
    const from = t.output.length;
    // Several writes; whether they arrive as separate reads is up to the kernel (the editor test splits for sure).
    t.term.write('\x1b[200~fake:echo\r\nline one\rline');
    t.term.write(' two\nend 👍\x1b[20');
    t.term.write('1~');
    t.term.write('\r');
    const drawn = await t.waitPrompt(from);
    expect(drawn).toMatch(/^fake:echo\r\nline one\r\nline two\r\nend 👍\r\n/);
    expect(drawn).toContain(`${REPLY}received: ${JSON.stringify('fake:echo\nline one\nline two\nend 👍')}`);
    expect(drawn.split('Credits').length - 1).toBe(1);
    expect(drawn.split(PROMPT).length - 1).toBe(1);
    const said = await t.turn('\x1b[200~first\r\nsecond\x1b[201~');
    expect(said).toContain(`${REPLY}You said:\r\nfirst\r\nsecond${CREDITS}`);
  });

  it('asks permission for a tool: y runs it, n denies it, t trusts it for the rest of the session', async () => {
    const t = new FakeTerm();
    await t.ready();
    const question = `I will run the following command: pwd (using tool: shell)\r\n\r\n${ALLOW}\r\n\r\n${PROMPT}`;
    expect(await t.turn('fake:permission')).toContain(question);
    const yes = await t.turn('y');
    expect(yes).toContain(` - Completed in 0.3s\r\n\r\n${REPLY}Ran pwd: ${t.cwd}${CREDITS}${PROMPT}`);
    expect(await t.turn('fake:tool')).toContain(question);
    expect(await t.turn('n')).toContain(`${REPLY}Tool use was denied.${CREDITS}`);
    await t.turn('fake:permission');
    expect(await t.turn('t')).toContain(`Ran pwd: ${t.cwd}`);
    const trusted = await t.turn('fake:permission');
    expect(trusted).not.toContain('Allow this action?');
    expect(trusted).toContain(`Ran pwd: ${t.cwd}${CREDITS}`);
  });

  it('Ctrl-C cancels a hanging turn at once and returns to the prompt without Credits', async () => {
    const t = new FakeTerm();
    await t.ready();
    const from = t.output.length;
    t.term.write('fake:hang\r');
    await t.waitFor('Thinking...', from);
    // Typed during the turn: queued like a terminal's input buffer, then flushed by Ctrl-C.
    t.term.write('never sent\r');
    const t0 = performance.now();
    t.term.write('\x03');
    const drawn = await t.waitPrompt(from);
    expect(performance.now() - t0).toBeLessThan(500);
    expect(drawn).toMatch(new RegExp(`^fake:hang\\r\\n\\rThinking\\.\\.\\.\\r\\n\\^C\\r\\n${esc(PROMPT)}$`));
    expect(await t.turn('after')).toContain(`${REPLY}You said: after${CREDITS}`);
    expect(t.output).not.toContain('never sent');
  });

  it('reads what was typed during a turn at the next prompt, like a terminal input queue', async () => {
    const t = new FakeTerm();
    await t.ready();
    const from = t.output.length;
    t.term.write('fake:silent 300\r');
    t.term.write('queued\r');
    const drawn = await t.waitFor(`You said: queued${CREDITS}${PROMPT}`, from);
    expect(drawn).toMatch(
      new RegExp(`^fake:silent 300\\r\\n${esc(REPLY)}done${esc(CREDITS + PROMPT)}queued\\r\\n`),
    );
  });

  it('Ctrl-C at the prompt prints the hint; a second one in a row exits 0', async () => {
    const t = new FakeTerm();
    await t.ready();
    let from = t.output.length;
    t.term.write('\x03');
    expect(await t.waitPrompt(from)).toBe(`\r\n${HINT}\r\n${PROMPT}`);
    // Typing in between starts the count again.
    from = t.output.length;
    t.term.write('x\x03');
    expect(await t.waitPrompt(from)).toBe(`x\r\n${HINT}\r\n${PROMPT}`);
    t.term.write('\x03');
    expect(await t.exited()).toMatchObject({ exitCode: 0 });
  });

  it.each([
    ['Ctrl-D on an empty line', '\x04'],
    ['/quit', '/quit\r'],
    ['/exit', '/exit\r'],
    ['/q', '/q\r'],
  ])('%s exits 0', async (_name, keys) => {
    const t = new FakeTerm();
    await t.ready();
    t.term.write(keys);
    expect(await t.exited()).toMatchObject({ exitCode: 0 });
  });

  it('/clear asks [y/n], then returns to the prompt', async () => {
    const t = new FakeTerm();
    await t.ready();
    const from = t.output.length;
    t.term.write('/clear\r');
    expect(await t.waitFor('[y/n]: ', from)).toBe('/clear\r\nAre you sure? [y/n]: ');
    expect(await t.turn('y')).toBe(`y\r\nConversation history cleared.\r\n${PROMPT}`);
  });
});

describe('fake kiro-cli test behaviours', () => {
  it('fake:flood writes every numbered line through a paused reader (backpressure), then ends the turn', async () => {
    const t = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_THINK_MS: '0' });
    await t.ready();
    const from = t.output.length;
    t.term.write('fake:flood 1\r');
    await t.waitFor('flood line 000000000', from);
    // The kernel's pty buffer fills while nobody reads: the fake blocks instead of dropping output.
    t.term.pause();
    // A window, not a wait for output: while nobody reads, the fake's writes block instead of dropping lines.
    await sleep(100);
    t.term.resume();
    const drawn = await t.waitPrompt(from, PROMPT, 10_000);
    const numbers = [...drawn.matchAll(/flood line (\d{9}) x{77}\r\n/g)].map((m) => Number(m[1]));
    const done = /flood done: (\d+) lines/.exec(drawn);
    expect(Number(done![1])).toBe(numbers.length);
    expect(numbers).toEqual(numbers.map((_, i) => i));
    expect(numbers.length * 100).toBeGreaterThanOrEqual(1024 * 1024);
    expect(drawn.endsWith(`${CREDITS}${PROMPT}`)).toBe(true);
  });

  it('fake:spin 0 burns CPU in slices, so Ctrl-C and SIGINT still cancel it promptly', async () => {
    const t = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_THINK_MS: '0' });
    await t.ready();
    const chat = await t.chat();
    for (const cancel of [() => t.term.write('\x03'), () => process.kill(chat.pid, 'SIGINT')]) {
      const from = t.output.length;
      t.term.write('fake:spin 0\r');
      const cpu0 = readProc(chat.pid)!.cpuTicks;
      await waitFor(() => readProc(chat.pid)!.cpuTicks >= cpu0 + 10, 'the chat to burn 100 ms of CPU');
      const t0 = performance.now();
      cancel();
      expect(await t.waitPrompt(from)).toMatch(new RegExp(`\\r\\n\\^C\\r\\n${esc(PROMPT)}$`));
      expect(performance.now() - t0).toBeLessThan(500);
    }
  });

  it('fake:hold N makes the chat resident by N MB; fake:hold-child N does it in a child that stays', async () => {
    const t = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_THINK_MS: '0' });
    await t.ready();
    const chat = await t.chat();
    const before = readProc(chat.pid)!.rssPages;
    expect(await t.turn('fake:hold 64')).toContain(`${REPLY}holding 64 MB${CREDITS}`);
    expect((readProc(chat.pid)!.rssPages - before) * 4096).toBeGreaterThan(60 * 1024 * 1024);
    const [holder] = reported(await t.turn('fake:hold-child 32'), 'holding 32 MB in');
    await waitFor(
      () => (readProc(holder!)?.rssPages ?? 0) * 4096 > 32 * 1024 * 1024,
      'the child to hold 32 MB',
    );
    expect(readProc(holder!)!.ppid).toBe(chat.pid);
  });

  it('fake:echo and fake:hex report the exact text received; fake:mentions and fake:long are deterministic', async () => {
    const t = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_THINK_MS: '0' });
    await t.ready();
    expect(await t.turn('fake:echo  two  spaces ')).toContain(
      `${REPLY}received: ${JSON.stringify('fake:echo  two  spaces ')}${CREDITS}`,
    );
    expect(await t.turn('fake:hex é')).toContain(
      `${REPLY}${Buffer.from('fake:hex é').toString('hex')}${CREDITS}`,
    );
    const mentions = await t.turn('fake:mentions');
    expect(mentions).toContain('@everyone @here <@123456789012345678> <@&123456789012345679>');
    expect(mentions).toContain(`\r\n${'x'.repeat(2500)}${CREDITS}`);
    const long = await t.turn('fake:long 3000');
    expect(long).toBe(await t.turn('fake:long 3000'));
    const body = long.slice(long.indexOf(REPLY) + REPLY.length, long.indexOf(CREDITS));
    expect(body.length).toBeGreaterThanOrEqual(3000);
    expect(body).toMatch(/^line 0: /);
    expect(body).toMatch(/\r\n```js\r\nconst line\d+ = \d+;.*\r\n```\r\nline \d+: /s);
  });

  it('fake:crash exits 1 mid-turn and fake:crash-signal dies by SIGKILL; the wrapper reports both', async () => {
    const crash = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_THINK_MS: '0' });
    await crash.ready();
    crash.term.write('fake:crash\r');
    expect(await crash.exited()).toMatchObject({ exitCode: 1 });
    expect(crash.output).toContain(`${REPLY}partial output\r\n`);
    expect(crash.output.endsWith(`partial output\r\n`)).toBe(true);
    const killed = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_THINK_MS: '0' });
    await killed.ready();
    killed.term.write('fake:crash-signal\r');
    expect(await killed.exited()).toMatchObject({ exitCode: 128 + 9 });
  });

  it('KIRO_FAKE_IGNORE_TERM=1 and fake:ignore-term make the chat ignore SIGTERM', async () => {
    const t = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_IGNORE_TERM: '1' });
    await t.ready();
    const chat = await t.chat();
    process.kill(chat.pid, 'SIGTERM');
    await staysAlive(chat, 200);
    const u = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_THINK_MS: '0' });
    await u.ready();
    const late = await u.chat();
    expect(await u.turn('fake:ignore-term')).toContain(`${REPLY}ignoring SIGTERM${CREDITS}`);
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
      expect(echoed, `cut at ${cut}`).toBe('fake:echo a\r\nb\r\nc\r\nd👍\r\n');
    }
  });

  it('keeps keyboard escape sequences and control bytes out of the line but in the raw bytes', () => {
    const input = 'ab\x1b[Dc\x00d\x7fe\r';
    for (let cut = 0; cut <= input.length; cut++) {
      expect(typeSplit(input, cut).lines, `cut at ${cut}`).toEqual([
        { text: 'abce', raw: 'ab\x1b[Dc\x00d\x7fe' },
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
    expect(await t.turn('fake:pid')).toContain(`${REPLY}pid ${chat.pid} ppid ${t.pid}${CREDITS}`);
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
    const t = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_THINK_MS: '0' });
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
  it('not logged in: the error on the terminal and exit code 1', async () => {
    const t = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_STARTUP: 'not-logged-in' });
    expect((await t.exited()).exitCode).toBe(1);
    expect(t.output).toBe('error: You are not logged in, please log in with kiro-cli login\r\n');
  });

  it('KIRO_FAKE_STARTUP=slow waits before the banner; never-ready draws the banner and no prompt', async () => {
    const slow = new FakeTerm(['chat', '--legacy-ui'], {
      KIRO_FAKE_STARTUP: 'slow',
      KIRO_FAKE_STARTUP_DELAY_MS: '400',
    });
    expect(await slow.ready()).toBeGreaterThanOrEqual(400);
    const never = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_STARTUP: 'never-ready' });
    await never.waitFor(MCP_LINE);
    // Absence can only be shown over a window.
    await staysAlive(never.wrapper, 300);
    expect(never.output.endsWith(MCP_LINE)).toBe(true);
  });

  it.each([
    ['exit-at-once', 3, ''],
    ['bad-model', 1, "error: Model 'x' does not exist. Available models: claude-sonnet-4\r\n"],
  ])('KIRO_FAKE_STARTUP=%s exits %i', async (mode, code, text) => {
    const t = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_STARTUP: mode });
    expect((await t.exited()).exitCode).toBe(code);
    expect(t.output).toBe(text);
  });

  it('--resume reports the messages of the directory’s last conversation; fake:history lists them', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'fake-kiro-resume-'));
    dirs.push(dir);
    writeFileSync(join(dir, '.kiro-fake-history'), 'stale from an older conversation\n');
    const first = new FakeTerm(['chat', '--legacy-ui'], { KIRO_FAKE_THINK_MS: '0' }, dir);
    await first.ready();
    await first.turn('remember me');
    await first.turn('\x1b[200~two\r\nlines\x1b[201~');
    first.term.write('/quit\r');
    await first.exited();
    const second = new FakeTerm(['chat', '--legacy-ui', '--resume'], { KIRO_FAKE_THINK_MS: '0' }, dir);
    await second.ready();
    expect(second.output).toContain(`${MCP_LINE}Resuming conversation with 2 messages\r\n${PROMPT}`);
    expect(await second.turn('fake:history')).toContain(
      `${REPLY}remember me\r\ntwo\r\nlines\r\nfake:history${CREDITS}`,
    );
  });

  it('the wrapper prints its version, and refuses bad arguments with exit code 2', () => {
    expect(execFileSync(FAKE, ['--version'], { encoding: 'utf8' })).toBe('kiro-cli 1.0.0-fake\n');
    const bad = [
      ['nonsense'],
      ['chat', '--legacy-ui', '--bogus'],
      ['chat', '--agent'],
      ['chat', 'one', 'two'],
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
