import { afterEach, describe, expect, it } from 'vitest';
import { kiroClassicProfile } from '../src/agent/AgentProfile.js';
import { TurnReader } from '../src/agent/TurnReader.js';

// Byte sequences as kiro-cli 2.x --legacy-ui draws them (shared/kiro-cli.md), after the terminal's ONLCR.
const OPEN = '\x1b[?2004h';
const CLOSE = '\x1b[?2004l\r\n';
const PROMPT = `${OPEN}\r\x1b[K\x1b[32m7% \x1b[0m\x1b[38;5;93m> \x1b[0m\r\x1b[5C`;
const HINTED = `${OPEN}\r\x1b[K\x1b[32m0% \x1b[0m\x1b[38;5;93m> \x1b[0m\x1b[38;5;240mHow can I help?\x1b[m\r\x1b[5C`;
const REPLY = '\x1b[38;5;141m> \x1b[0m';
const SPIN = '\x1b[?25l\r⠋ Thinking...\r⠙ Thinking...\x1b[2K\x1b[1G\x1b[?25h';
const SUMMARY = '\r\n\r\n\x1b[38;5;8m\r\n ▸ Credits: 0.04 • Time: 3s\r\n\r\n\x1b[0m\x1b[?25h';

describe('TurnReader with the kiro-cli classic profile', () => {
  let reader: TurnReader;
  afterEach(() => reader.dispose());

  it('sees the first read by its marker, with the grey hint after the cursor', async () => {
    reader = new TurnReader(kiroClassicProfile);
    const mcp = '\r⠋ 0 of 1 mcp servers initialized. ctrl-c to start chatting now\r\x1b[2K\r\x1b[6n\r\x1b[6n';
    expect((await reader.write(mcp)).kind).toBe('output');
    expect(await reader.write(HINTED)).toMatchObject({ kind: 'prompt', matched: true });
  });

  it('a read whose prompt the profile does not know is still a read (the prompt is only a cross-check)', async () => {
    reader = new TurnReader(kiroClassicProfile);
    expect(await reader.write(`${OPEN}\r\x1b[Kkiro 3 says ❯ `)).toMatchObject({
      kind: 'prompt',
      matched: false,
    });
  });

  it('cuts one turn: skips the echo up to the read’s close, the spinner, the reply prefix and the summary', async () => {
    reader = new TurnReader(kiroClassicProfile);
    await reader.write(PROMPT);
    reader.beginTurn();
    expect((await reader.write('hello\r\nthere')).kind).toBe('prompt');
    expect(reader.echoDone).toBe(false);
    await reader.write(`${CLOSE}${SPIN}`);
    expect(reader.echoDone).toBe(true);
    expect(reader.partial()).toBe('');
    await reader.write(`${REPLY}Hi! Line one\r\nline two`);
    expect(reader.partial()).toBe('Hi! Line one\nline two');
    const screen = await reader.write(`${SUMMARY}${PROMPT.replace('7%', '8%')}`);
    expect(screen).toMatchObject({ kind: 'prompt', matched: true });
    expect(reader.usage()).toEqual({ credits: 0.04, contextPercent: 8 });
    expect(reader.endTurn()).toBe('Hi! Line one\nline two');
  });

  it('judges a screen state by the reads counted when it was taken, not by bytes parsed after it', async () => {
    reader = new TurnReader(kiroClassicProfile);
    await reader.write(PROMPT);
    reader.beginTurn();
    // Two chunks handed over at once: the first one's state is handled after the second is parsed.
    const [echo, answer] = await Promise.all([reader.write('typed'), reader.write(`${CLOSE}${REPLY}answer`)]);
    expect(echo.kind).toBe('prompt');
    expect(reader.echoDone).toBe(true);
    expect(reader.tookInput(echo)).toBe(false);
    expect(reader.tookInput(answer)).toBe(true);
  });

  it('recognises every prompt form of the classic UI and nothing else', () => {
    const p = kiroClassicProfile.prompt;
    for (const ok of ['> ', '[dev] > ', '7% > ', '[agent] 16% λ > ', '!> ', '[dev] 7% λ ↯ !> ', '93% ↯ > '])
      expect(p.test(ok), ok).toBe(true);
    for (const no of ['> text', 'x > ', '', 'Thinking...', '>> ', '7%> x'])
      expect(p.test(no), no).toBe(false);
  });

  it('keeps a reply line that starts with "> " when it is not drawn in a prefix colour (2.x purple, 1.x green)', async () => {
    reader = new TurnReader(kiroClassicProfile);
    await reader.write(PROMPT);
    reader.beginTurn();
    await reader.write(
      `q${CLOSE}${REPLY}quote:\r\n> quoted text\r\n\x1b[38;5;10m> \x1b[0mgreen${SUMMARY}${PROMPT}`,
    );
    expect(reader.endTurn()).toBe('quote:\n> quoted text\ngreen');
  });

  it('reports the tool-naming permission question at its read, then the answer’s echo is skipped', async () => {
    reader = new TurnReader(kiroClassicProfile);
    await reader.write(PROMPT);
    reader.beginTurn();
    const screen = await reader.write(
      `run pwd${CLOSE}I will run the following command: pwd (using tool: shell)\r\n\r\nAllow this action? Use 't' to trust (always allow) the 'shell' tool for the session. [y/n/t]:\r\n\r\n${PROMPT}`,
    );
    expect(screen).toMatchObject({ kind: 'permission', text: expect.stringContaining("the 'shell' tool") });
    reader.markInput();
    expect(reader.echoDone).toBe(false);
    await reader.write(`y${CLOSE}/tmp\r\n - Completed in 0.3s\r\n\r\n`);
    expect(reader.echoDone).toBe(true);
    expect((await reader.write(`${REPLY}Ran pwd: /tmp${SUMMARY}${PROMPT}`)).kind).toBe('prompt');
    expect(reader.endTurn()).toBe(
      'I will run the following command: pwd (using tool: shell)\n\n/tmp\n - Completed in 0.3s\n\nRan pwd: /tmp',
    );
  });

  it('joins soft-wrapped rows of one long line, even across many rows', async () => {
    reader = new TurnReader(kiroClassicProfile, { cols: 20, rows: 10 });
    await reader.write(PROMPT);
    reader.beginTurn();
    const long = 'word '.repeat(300).trim();
    await reader.write(`m${CLOSE}${REPLY}${long}${SUMMARY}${PROMPT}`);
    expect(reader.endTurn()).toBe(long);
  });

  it('caps a flood: keeps head and tail and says how many lines it dropped', async () => {
    reader = new TurnReader(kiroClassicProfile, { maxTurnChars: 1000 });
    await reader.write(PROMPT);
    reader.beginTurn();
    let chunk = '';
    for (let i = 0; i < 5000; i++) chunk += `line ${i}\r\n`;
    await reader.write(`m${CLOSE}${chunk}${PROMPT}`);
    const text = reader.endTurn();
    expect(text.length).toBeLessThan(1200);
    expect(text.startsWith('line 0\n')).toBe(true);
    expect(text.endsWith('line 4999')).toBe(true);
    expect(text).toMatch(/\[\d+ lines of output omitted\]/);
  });

  it('keeps the last lines of output for error reports', async () => {
    reader = new TurnReader(kiroClassicProfile);
    await reader.write('\x1b[31merror:\x1b[0m Login is required to use chat\r\n');
    expect(reader.recentOutput()).toContain('Login is required');
  });

  it('answers cursor-position queries like a terminal', async () => {
    reader = new TurnReader(kiroClassicProfile);
    const replies: string[] = [];
    reader.onReply = (d) => replies.push(d);
    await reader.write('ab\r\x1b[6n');
    expect(replies.join('')).toBe('\x1b[1;1R');
  });
});

describe('TurnReader with an agent that draws no read marker', () => {
  it('falls back to the prompt on the cursor line, and tells the purple reply prefix from the bare prompt', async () => {
    const reader = new TurnReader(kiroClassicProfile);
    await reader.write('\x1b[38;5;93m> \x1b[0m');
    reader.beginTurn();
    await reader.write('hi\r\n');
    expect((await reader.write(REPLY)).kind).toBe('output');
    expect((await reader.write('reply text\r\n\r\n\x1b[38;5;93m> \x1b[0m')).kind).toBe('prompt');
    // Without the marker the echo cannot be told from the reply: it stays, after its prompt.
    expect(reader.endTurn()).toBe('> hi\nreply text');
    reader.dispose();
  });
});
