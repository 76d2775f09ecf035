import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES, parseConfig } from '../src/config/Config.js';

describe('.env.example', () => {
  const text = readFileSync(join(import.meta.dirname, '../.env.example'), 'utf8');

  it('names every configuration variable', () => {
    for (const name of CONFIG_VARIABLES) expect(text, name).toMatch(new RegExp(`^#? ?${name}=`, 'm'));
  });

  it('shows the defaults the bot really uses', () => {
    const shown: Record<string, string> = {};
    for (const m of text.matchAll(/^# ([A-Z_]+)=(.+)$/gm)) shown[m[1]!] = m[2]!;
    const withShown = parseConfig({ ...shown, DISCORD_TOKEN: 't', ALLOW_ALL_USERS: 'true' });
    const withDefaults = parseConfig({ DISCORD_TOKEN: 't', ALLOW_ALL_USERS: 'true' });
    expect(withShown).toEqual(withDefaults);
  });
});
