import { describe, expect, it } from 'vitest';
import { buildAgentEnv } from '../src/agent/agentEnv.js';
import { sanitizeInput } from '../src/agent/sanitize.js';

describe('sanitizeInput', () => {
  it('removes control characters and escape bytes but keeps text, newlines and tabs', () => {
    expect(sanitizeInput('a\x00b\x03c\x1b[201~d\x7fe\u009bf')).toBe('abc[201~def');
    expect(sanitizeInput('one\r\ntwo\rthree\n\tfour')).toBe('one\ntwo\nthree\n\tfour');
  });

  it('keeps right-to-left, combining and emoji characters', () => {
    const s = 'שלום e\u0301 👩‍💻 \u202Eabc';
    expect(sanitizeInput(s)).toBe(s);
  });
});

describe('buildAgentEnv', () => {
  it('passes the allowlist, KIRO_* and named variables only, never DISCORD_TOKEN', () => {
    const env = buildAgentEnv(
      {
        PATH: '/bin',
        HOME: '/home/x',
        DISCORD_TOKEN: 'secret',
        AWS_SECRET_ACCESS_KEY: 'nope',
        KIRO_LOG: 'debug',
        MY_VAR: 'yes',
        THREADWARDEN_MARKER: 'forged',
      },
      ['MY_VAR', 'DISCORD_TOKEN'],
      'tw1:1:2:i:s',
    );
    expect(env).toEqual({
      PATH: '/bin',
      HOME: '/home/x',
      KIRO_LOG: 'debug',
      MY_VAR: 'yes',
      TERM: 'xterm-256color',
      THREADWARDEN_MARKER: 'tw1:1:2:i:s',
    });
  });
});
