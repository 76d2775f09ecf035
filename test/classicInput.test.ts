// biome-ignore-all lint/suspicious/noControlCharactersInRegex: the properties are about control characters.
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { kiroClassicProfile as profile } from '../src/agent/AgentProfile.js';
import { fenceCount, literalText, typedInput } from '../src/agent/classic/typedInput.js';
import { writeWorkspaceSettings } from '../src/agent/classic/workspaceSettings.js';

// What kiro-cli's classic UI does with a submitted line (shared/kiro-cli.md, "Input", "Dispatch"), as a model:
// Enter submits only with an even ``` count and no final `\`; then zero-width characters are deleted, the text is
// trimmed, and the first character decides.
const ZERO_WIDTH = /\u200B|\u200C|\u200D|\u2060|\uFEFF/g;
function submits(text: string): boolean {
  return fenceCount(text) % 2 === 0 && !text.endsWith('\\');
}
function modelText(text: string): string {
  return text.replace(ZERO_WIDTH, '').trim();
}
function dispatched(text: string): boolean {
  const t = modelText(text);
  return /^[!/@]/.test(t) || /\s@/.test(t);
}
const CONTROL = /[\u0000-\u0009\u000B-\u001F\u007F-\u009F]/;

const tricky = fc.oneof(
  fc.string(),
  fc.string({
    unit: fc.constantFrom('`', '\\', '!', '/', '@', ' ', '\n', '\r', '\t', '\x1b', '\u200b', 'a', '\x03'),
  }),
);

describe('typing a message at the classic UI', () => {
  it('always submits, carries no control character but newline, is never dispatched, and reaches the model intact', () => {
    fc.assert(
      fc.property(tricky, (input) => {
        const typed = literalText(input, profile);
        expect(submits(typed)).toBe(true);
        expect(CONTROL.test(typed)).toBe(false);
        expect(dispatched(typed)).toBe(false);
        // What the model gets is the user's text (control characters dropped, Tab as spaces) with the visible
        // prefix added before dispatch characters, and nothing else.
        const expected = input
          .replace(/\r\n?/g, '\n')
          .replace(/\t/g, '    ')
          .replace(/[\u0000-\u0009\u000B-\u001F\u007F-\u009F]/g, '')
          .replace(ZERO_WIDTH, '');
        expect(modelText(typed).split(profile.literalPrefix).join('')).toBe(
          modelText(expected).split(profile.literalPrefix).join(''),
        );
      }),
      { numRuns: 2000 },
    );
  });

  it('is one bracketed paste and Enter', () => {
    expect(typedInput('line one\nline two', profile)).toBe('\x1b[200~line one\nline two\x1b[201~\r');
    expect(typedInput('!touch x', profile)).toBe('\x1b[200~·!touch x\x1b[201~\r');
    expect(typedInput('read @secret and a@b', profile)).toBe('\x1b[200~read ·@secret and a@b\x1b[201~\r');
    expect(typedInput('```js\ncode', profile)).toBe('\x1b[200~``\u200b`js\ncode\x1b[201~\r');
    expect(typedInput('C:\\', profile)).toBe('\x1b[200~C:\\\u200b\x1b[201~\r');
  });
});

describe('the workspace settings file', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('replaces what the agent left there, and never writes through a symlink it planted', () => {
    const root = mkdtempSync(join(tmpdir(), 'tw-settings-'));
    dirs.push(root);
    const cwd = join(root, 'ws');
    const outside = join(root, 'outside');
    mkdirSync(outside);
    writeFileSync(join(outside, 'cli.json'), 'precious');
    mkdirSync(join(cwd, '.kiro'), { recursive: true });
    symlinkSync(outside, join(cwd, '.kiro', 'settings'));
    const file = writeWorkspaceSettings(cwd, profile.settingsFile!, profile.settings);
    expect(readFileSync(join(outside, 'cli.json'), 'utf8')).toBe('precious');
    expect(lstatSync(join(cwd, '.kiro', 'settings')).isDirectory()).toBe(true);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(profile.settings);
    symlinkSync(join(outside, 'cli.json'), join(cwd, '.kiro', 'settings', 'other'));
    writeFileSync(
      file,
      JSON.stringify({ 'chat.disableMarkdownRendering': false, 'chat.enableTrustAll': true }),
    );
    rmSync(file);
    symlinkSync(join(outside, 'cli.json'), file);
    writeWorkspaceSettings(cwd, profile.settingsFile!, profile.settings);
    expect(readFileSync(join(outside, 'cli.json'), 'utf8')).toBe('precious');
    expect(lstatSync(file).isSymbolicLink()).toBe(false);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(profile.settings);
  });
});
