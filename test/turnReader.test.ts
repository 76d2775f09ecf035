import { afterEach, describe, expect, it } from 'vitest';
import { kiroClassicProfile } from '../src/agent/AgentProfile.js';
import { TurnReader } from '../src/agent/TurnReader.js';

// Byte sequences as kiro-cli --legacy-ui draws them (shared/kiro-cli.md).
const PROMPT = '\x1b[36m[default]\x1b[35m> \x1b[39m';
const REPLY = '\x1b[38;5;10m> \x1b[39m';
const CREDITS = '\r\n\r\n▸ Credits: 0.04 • Time: 3s\r\n\r\n';

describe('TurnReader with the kiro-cli classic profile', () => {
  let reader: TurnReader;
  afterEach(() => reader.dispose());

  it('sees the start-up prompt only after the banner', async () => {
    reader = new TurnReader(kiroClassicProfile);
    expect(
      (
        await reader.write(
          'Welcome to Kiro\r\n1 of 1 mcp servers initialized. ctrl-c to start chatting now\r\n',
        )
      ).kind,
    ).toBe('output');
    expect((await reader.write(PROMPT)).kind).toBe('prompt');
  });

  it('cuts one turn: skips the echo, the spinner, the reply prefix and the credits line', async () => {
    reader = new TurnReader(kiroClassicProfile);
    await reader.write(PROMPT);
    reader.beginTurn(1);
    await reader.write('hello there\r\n');
    expect(reader.echoDone).toBe(true);
    await reader.write('Thinking...\rThinking...\r');
    expect(reader.partial()).toBe('');
    await reader.write(`\r\x1b[2K${REPLY}Hi! Line one\r\nline two`);
    expect(reader.partial()).toBe('Hi! Line one\nline two');
    const screen = await reader.write(`${CREDITS}${PROMPT}`);
    expect(screen.kind).toBe('prompt');
    expect(reader.endTurn()).toBe('Hi! Line one\nline two');
  });

  it('recognises every prompt form of the classic UI and nothing else', () => {
    const p = kiroClassicProfile.prompt;
    for (const ok of ['> ', '[default]> ', '[agent] > ', '[agent] 16% λ > ', '!> ', '[default]!> '])
      expect(p.test(ok)).toBe(true);
    for (const no of ['> text', 'x > ', '', 'Thinking...', '>> ']) expect(p.test(no)).toBe(false);
  });

  it('keeps a reply line that starts with "> " when it is not drawn in the prefix colour', async () => {
    reader = new TurnReader(kiroClassicProfile);
    await reader.write(PROMPT);
    reader.beginTurn(1);
    await reader.write(`q\r\n${REPLY}quote:\r\n> quoted text\r\n${CREDITS}${PROMPT}`);
    expect(reader.endTurn()).toBe('quote:\n> quoted text');
  });

  it('reports the permission question instead of a finished turn', async () => {
    reader = new TurnReader(kiroClassicProfile);
    await reader.write(PROMPT);
    reader.beginTurn(1);
    const screen = await reader.write(
      `run pwd\r\nI will run the following command: pwd (using tool: shell)\r\n\r\nAllow this action? Use 't' to trust (always allow) this tool for the session. [y/n/t]:\r\n\r\n${PROMPT}`,
    );
    expect(screen).toEqual({ kind: 'permission', text: expect.stringContaining('[y/n/t]:') });
    reader.skipEcho(1);
    await reader.write('y\r\n - Completed in 0.3s\r\n');
    expect(reader.echoDone).toBe(true);
    expect((await reader.write(`${REPLY}/tmp\r\n${CREDITS}${PROMPT}`)).kind).toBe('prompt');
    expect(reader.endTurn()).toBe(
      'I will run the following command: pwd (using tool: shell)\n\n - Completed in 0.3s\n/tmp',
    );
  });

  it('joins soft-wrapped rows into one line', async () => {
    reader = new TurnReader(kiroClassicProfile, { cols: 20 });
    await reader.write(PROMPT);
    reader.beginTurn(1);
    const long = 'x'.repeat(55);
    await reader.write(`m\r\n${REPLY}${long}\r\n${CREDITS}${PROMPT}`);
    expect(reader.endTurn()).toBe(long);
  });

  it('caps a flood: keeps head and tail and says how many lines it dropped', async () => {
    reader = new TurnReader(kiroClassicProfile, { maxTurnChars: 1000 });
    await reader.write(PROMPT);
    reader.beginTurn(1);
    let chunk = '';
    for (let i = 0; i < 5000; i++) chunk += `line ${i}\r\n`;
    await reader.write(`m\r\n${chunk}${PROMPT}`);
    const text = reader.endTurn();
    expect(text.length).toBeLessThan(1200);
    expect(text.startsWith('line 0\n')).toBe(true);
    expect(text.endsWith('line 4999')).toBe(true);
    expect(text).toMatch(/\[\d+ lines of output omitted\]/);
  });

  it('keeps the last lines of output for error reports', async () => {
    reader = new TurnReader(kiroClassicProfile);
    await reader.write('error: You are not logged in, please log in with kiro-cli login\r\n');
    expect(reader.recentOutput()).toContain('You are not logged in');
  });

  it('answers cursor-position queries like a terminal', async () => {
    reader = new TurnReader(kiroClassicProfile);
    const replies: string[] = [];
    reader.onReply = (d) => replies.push(d);
    await reader.write('ab\x1b[6n');
    expect(replies.join('')).toBe('\x1b[1;3R');
  });
});

describe('TurnReader and the bare prompt', () => {
  it('does not mistake the green reply prefix "> " for the bare prompt "> "', async () => {
    const reader = new TurnReader(kiroClassicProfile);
    await reader.write('\x1b[35m> \x1b[39m');
    reader.beginTurn(1);
    await reader.write('hi\r\n');
    expect((await reader.write('\x1b[38;5;10m> \x1b[39m')).kind).toBe('output');
    expect((await reader.write('reply text\r\n\r\n\x1b[35m> \x1b[39m')).kind).toBe('prompt');
    expect(reader.endTurn()).toBe('reply text');
    reader.dispose();
  });
});
