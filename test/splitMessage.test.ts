import { describe, expect, it } from 'vitest';
import { splitMessage } from '../src/discord/splitMessage.js';

/** Every part, rendered alone, has balanced fences. */
function balanced(part: string): boolean {
  return (part.match(/^\s*```/gm) ?? []).length % 2 === 0;
}

describe('splitMessage', () => {
  it('returns short text as one part and nothing for blank text', () => {
    expect(splitMessage('hello')).toEqual(['hello']);
    expect(splitMessage('  \n\n ')).toEqual([]);
  });

  it('splits on line boundaries within the limit and loses nothing', () => {
    const lines = Array.from({ length: 300 }, (_, i) => `line number ${i}`);
    const parts = splitMessage(lines.join('\n'));
    expect(parts.length).toBeGreaterThan(1);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(2000);
    expect(parts.join('\n')).toBe(lines.join('\n'));
  });

  it('closes and reopens a code block across parts, keeping its language', () => {
    const code = Array.from({ length: 200 }, (_, i) => `console.log(${i}); // some padding text`);
    const text = ['Intro', '```js', ...code, '```', 'Outro'].join('\n');
    const parts = splitMessage(text);
    expect(parts.length).toBeGreaterThan(2);
    for (const p of parts) {
      expect(p.length).toBeLessThanOrEqual(2000);
      expect(balanced(p)).toBe(true);
    }
    expect(parts[1]!.startsWith('```js\n')).toBe(true);
    const rejoined = parts.map((p, i) => {
      let s = p;
      if (i > 0 && s.startsWith('```js\n') && i < parts.length) s = s.slice('```js\n'.length);
      if (i < parts.length - 1 && s.endsWith('\n```')) s = s.slice(0, -'\n```'.length);
      return s;
    });
    expect(rejoined.join('\n')).toBe(text);
  });

  it('hard-cuts a line longer than a message', () => {
    const parts = splitMessage('x'.repeat(4500));
    expect(parts.map((p) => p.length).reduce((a, b) => a + b)).toBe(4500);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(2000);
  });

  it('respects a smaller limit inside a fence with long lines', () => {
    const text = ['```', 'y'.repeat(500), 'z'.repeat(500), '```'].join('\n');
    for (const p of splitMessage(text, 200)) {
      expect(p.length).toBeLessThanOrEqual(200);
      expect(balanced(p)).toBe(true);
    }
  });
});

describe('splitMessage on adversarial fences', () => {
  it('never exceeds the limit, whatever mix of fence lines and lengths', () => {
    for (let n = 0; n < 300; n++) {
      const lines: string[] = [];
      for (let i = 0; i < 200; i++) {
        const r = (i * 7919 + n * 31) % 11;
        lines.push(r === 0 ? '```js' : r === 1 ? '```' : 'x'.repeat((i * n) % 97));
      }
      for (const p of splitMessage(lines.join('\n'))) expect(p.length).toBeLessThanOrEqual(2000);
    }
  });
});
