import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { WorkMeter } from '../src/discord/fences.js';
import { type SplitPart, splitMessage, splitMessageParts } from '../src/discord/splitMessage.js';
import { streamPreview } from '../src/discord/streamPreview.js';

// ---- a reference reader of the fence rules (fences.ts), written independently with regular expressions ----

interface RefFence {
  ch: string;
  len: number;
}
const FENCE_LINE = /^\s*(`+|~+)([\s\S]*)$/;

function refAfter(open: RefFence | undefined, line: string): RefFence | undefined {
  const m = FENCE_LINE.exec(line);
  if (!m) return open;
  const run = m[1]!;
  const rest = m[2]!;
  if (run.length < 3 || run.length > 16) return open;
  if (open) return run[0] === open.ch && run.length >= open.len && /^\s*$/.test(rest) ? undefined : open;
  if (run[0] === '`' && rest.includes('`')) return undefined;
  return { ch: run[0]!, len: run.length };
}

function refAfterText(open: RefFence | undefined, text: string): RefFence | undefined {
  return text.split('\n').reduce(refAfter, open);
}

/**
 * Checks every promise of splitMessageParts on one input and returns the parts:
 * - every part is at most `limit` characters and is `reopen` + newline + text + newline + `close` (each when set);
 * - text preserved: the parts' texts joined with their `joinsNext` (a newline where the cut fell between lines,
 *   nothing where a long line was cut) equal the input without its trailing whitespace;
 * - fences balanced: every part, read alone, ends with no fence open;
 * - `reopen` is present exactly when a fence is open where the part starts (reading the emitted lines, the pieces
 *   of a cut line each being a line), and opens a fence of that marker; `close` exactly when one is open at the
 *   part's end, and is that marker;
 * - splitMessage returns the non-blank contents, and drops only whitespace-only ones.
 */
function checkSplit(text: string, limit: number): SplitPart[] {
  const parts = splitMessageParts(text, limit);
  const body = text.trimEnd();
  if (body.trim() === '') {
    expect(parts).toEqual([]);
    return parts;
  }
  expect(parts.map((p) => p.text + p.joinsNext).join('')).toBe(body);
  expect(parts.at(-1)!.joinsNext).toBe('');
  let state: RefFence | undefined;
  for (const p of parts) {
    expect(p.content.length).toBeLessThanOrEqual(limit);
    expect(p.content).toBe(
      (p.reopen === undefined ? '' : `${p.reopen}\n`) +
        p.text +
        (p.close === undefined ? '' : `\n${p.close}`),
    );
    expect(refAfterText(undefined, p.content)).toBeUndefined();
    if (state) expect(refAfter(undefined, p.reopen ?? '')).toEqual(state);
    else expect(p.reopen).toBeUndefined();
    state = refAfterText(state, p.text);
    if (state) expect(p.close).toBe(state.ch.repeat(state.len));
    else expect(p.close).toBeUndefined();
    // Where the cut fell between lines, the next part starts with the next line, so fences carry over as read.
  }
  const kept = parts.filter((p) => p.content.trim() !== '');
  for (const p of parts) if (!kept.includes(p)) expect(p.content.trim()).toBe('');
  expect(splitMessage(text, limit)).toEqual(kept.map((p) => p.content));
  return parts;
}

// ---- generators: fence lines of every shape, plain lines, long lines, and raw strings ----

const unit = fc.constantFrom('a', 'b', 'x', ' ', '\t', '`', '~', 'é', '😀', '\u2028', '\r', '-', '#');
const spaces = fc.string({ unit: fc.constantFrom(' ', '\t', '\u00a0'), maxLength: 6 });
const fenceLine = fc
  .tuple(
    spaces,
    fc.constantFrom('`', '~'),
    fc.integer({ min: 1, max: 20 }),
    fc.oneof(
      fc.constantFrom('', 'js', ' python', 'ts  ', '`', 'a`b', ' \t'),
      fc.string({ unit, maxLength: 40 }),
    ),
  )
  .map(([ws, ch, n, info]) => ws + ch.repeat(n) + info);
const plainLine = fc.string({ unit, maxLength: 300 });
const longLine = fc
  .tuple(fc.string({ unit, minLength: 1, maxLength: 8 }), fc.integer({ min: 100, max: 1500 }))
  .map(([s, n]) => s.repeat(n));
/** The line of issue 10, item 1: an opening fence line of 1000+ characters (the old splitter never ended). */
const longFenceLine = fc
  .tuple(
    fc.constantFrom('```', '~~~', '````'),
    fc.integer({ min: 900, max: 6000 }),
    fc.string({ unit, maxLength: 3 }),
  )
  .map(([m, n, s]) => `${m}${'x'.repeat(n)}${s}`);
/** Whitespace then a fence run, longer than a part: every cut near the fence would make a piece read as one. */
const spacedFence = fc
  .tuple(
    fc.integer({ min: 1, max: 4000 }),
    fc.constantFrom('```', '~~~~', '```js'),
    fc.string({ unit, maxLength: 20 }),
  )
  .map(([n, f, s]) => `${' '.repeat(n)}${f}${s}`);
const line = fc.oneof(
  { weight: 4, arbitrary: plainLine },
  { weight: 4, arbitrary: fenceLine },
  { weight: 1, arbitrary: longLine },
  { weight: 1, arbitrary: longFenceLine },
  { weight: 1, arbitrary: spacedFence },
);
const text = fc.oneof(
  { weight: 8, arbitrary: fc.array(line, { maxLength: 40 }).map((ls) => ls.join('\n')) },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 5000 }) },
  { weight: 1, arbitrary: fc.string({ unit, maxLength: 8000 }) },
);
const limit = fc.oneof(fc.constant(2000), fc.integer({ min: 100, max: 2000 }));

describe('splitMessage properties (fast-check)', () => {
  it('any text, any fence mix, any line length: parts within the limit, fences balanced, text preserved', () => {
    fc.assert(
      fc.property(text, limit, (t, l) => {
        checkSplit(t, l);
      }),
      { numRuns: 400 },
    );
  });

  it('cuts a line only when it cannot fit in a part of its own, and never inside a surrogate pair', () => {
    fc.assert(
      fc.property(text, limit, (t, l) => {
        const parts = splitMessageParts(t, l);
        for (let i = 0; i < parts.length - 1; i++) {
          if (parts[i]!.joinsNext !== '') continue;
          const a = parts[i]!.text;
          const b = parts[i + 1]!.text;
          // The line that was cut: the end of this part's last line and the start of the next part's first.
          const cutLine = a.slice(a.lastIndexOf('\n') + 1) + b.split('\n', 1)[0]!;
          // A part holds reopen (≤ 37) + newline + line + newline + close (≤ 16): shorter lines are never cut.
          expect(cutLine.length).toBeGreaterThan(l - 37 - 1 - 1 - 16);
          const code = a.charCodeAt(a.length - 1);
          expect(code >= 0xd800 && code <= 0xdbff && /^[\udc00-\udfff]/.test(b)).toBe(false);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('works in linear time: at most 12 steps per input character, and 10× the input costs at most 12× the work', () => {
    const steps = (t: string) => {
      const meter: WorkMeter = { steps: 0 };
      splitMessageParts(t, 2000, meter);
      return meter.steps;
    };
    fc.assert(
      fc.property(text, (t) => {
        expect(steps(t)).toBeLessThanOrEqual(12 * (t.length + 1));
      }),
      { numRuns: 300 },
    );
    // Inputs big enough to be split, scaled ten times: the work grows with the size, not faster.
    fc.assert(
      fc.property(fc.array(line, { minLength: 1, maxLength: 10 }), (ls) => {
        // Each copy starts with no fence open, as the first does: a copy's cost depends on the state it starts in.
        let unitText = `${ls.join('\n')}\n${'z'.repeat(2100)}`;
        const open = refAfterText(undefined, unitText);
        if (open) unitText += `\n${open.ch.repeat(open.len)}`;
        const ten = Array.from({ length: 10 }, () => unitText).join('\n');
        expect(steps(ten)).toBeLessThanOrEqual(12 * steps(unitText));
      }),
      { numRuns: 200 },
    );
  });

  it('ends on the input that hung the old splitter: an open fence line of 1000 to 100,000 characters', () => {
    for (const n of [1000, 1990, 2000, 5000, 100_000]) {
      const t = `intro\n\`\`\`${'x'.repeat(n)}\n${'code line\n'.repeat(200)}\`\`\`\noutro`;
      const parts = checkSplit(t, 2000);
      expect(parts.length).toBeLessThanOrEqual(Math.ceil((n + 2030) / 1900) + 2);
    }
  });

  it('does not cut where the rest of a long line would read as a fence', () => {
    // 1990 letters, then a fence run: the longest cut would start the next part with "```".
    const t = `${'a'.repeat(1967)}\`\`\`${'b'.repeat(100)}`;
    const parts = checkSplit(t, 2000);
    expect(parts).toHaveLength(2);
    expect(parts[1]!.text.startsWith('```')).toBe(false);
    expect(parts.every((p) => p.reopen === undefined && p.close === undefined)).toBe(true);
  });

  it('closes a block the text leaves open, also in a text short enough for one part', () => {
    expect(splitMessage('```js\nconst a = 1;')).toEqual(['```js\nconst a = 1;\n```']);
    expect(splitMessage('~~~~\nx\n~~~')).toEqual(['~~~~\nx\n~~~\n~~~~']);
    expect(splitMessage('```js```')).toEqual(['```js```']);
  });
});

describe('streaming previews', () => {
  it('any text: at most the budget, fences balanced, the tail of the text shown', () => {
    fc.assert(
      fc.property(text, fc.integer({ min: 100, max: 1900 }), (t, budget) => {
        const p = streamPreview(t, budget);
        expect(p.length).toBeLessThanOrEqual(budget);
        expect(refAfterText(undefined, p)).toBeUndefined();
        const open = refAfterText(undefined, t);
        // A closing fence the preview added for a block its own text leaves open.
        const lastNl = p.lastIndexOf('\n');
        const shownOpen = lastNl === -1 ? undefined : refAfterText(undefined, p.slice(0, lastNl));
        const added =
          shownOpen && p.slice(lastNl + 1) === shownOpen.ch.repeat(shownOpen.len) ? p.slice(lastNl) : '';
        if (t.length + 17 <= budget) {
          expect(p).toBe(open ? `${t}\n${open.ch.repeat(open.len)}` : t);
          return;
        }
        // The shown tail is the end of the text, after `…` (and a reopened fence when one was open there).
        const dots = p.indexOf('…');
        const atLine = p[dots + 1] === '\n';
        let tail = p.slice(dots + (atLine ? 2 : 1));
        if (!t.endsWith(tail) && added !== '' && tail.endsWith(added)) tail = tail.slice(0, -added.length);
        expect(t.endsWith(tail)).toBe(true);
        const tailStart = t.length - tail.length;
        if (atLine) {
          // Started at a line boundary: the reopened fence is the one open there in the whole text.
          expect(t[tailStart - 1]).toBe('\n');
          const state = refAfterText(undefined, t.slice(0, tailStart - 1));
          expect(dots === 0 ? undefined : refAfter(undefined, p.slice(0, dots - 1))).toEqual(state);
        }
        // At most a quarter of the tail is skipped to start at a line boundary (overhead: 57 characters), unless
        // the line cut was a fence line, which is skipped whole.
        const prevLineStart = t.lastIndexOf('\n', tailStart - 2) + 1;
        const beforePrev =
          prevLineStart === 0 ? undefined : refAfterText(undefined, t.slice(0, prevLineStart - 1));
        const skippedFence =
          atLine && refAfter(beforePrev, t.slice(prevLineStart, tailStart - 1)) !== beforePrev;
        if (!skippedFence) expect(tail.length).toBeGreaterThanOrEqual(Math.floor(((budget - 57) * 3) / 4));
      }),
      { numRuns: 400 },
    );
  });

  it('a tail that starts inside a code block reopens it with its language, and the old parity count would not', () => {
    const code = Array.from({ length: 300 }, (_, i) => `let v${i} = ${i};`).join('\n');
    const t = `Here:\n\`\`\`ts\n${code}\n\`\`\`\nand a closing remark`;
    const p = streamPreview(t, 1900);
    expect(p.startsWith('```ts\n…\n')).toBe(true);
    expect(p.endsWith('```\nand a closing remark')).toBe(true);
    expect(refAfterText(undefined, p)).toBeUndefined();
    // The tail alone has one fence line (the closing one): read alone it would open a block, not close one.
    expect((p.slice('```ts\n'.length).match(/^```/gm) ?? []).length).toBe(1);
  });
});
