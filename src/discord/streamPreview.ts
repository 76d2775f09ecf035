import { fenceAfter, fenceAfterText, MAX_FENCE_RUN, MAX_REOPEN } from './fences.js';

/** Characters a preview adds around its tail at most: `…`, a reopened fence, a closing fence and their newlines. */
const OVERHEAD = MAX_REOPEN + MAX_FENCE_RUN + 4;

/**
 * What a streaming message shows of a reply still being written: the text, or its tail after `…` when it is longer
 * than `budget`, starting at a line boundary when one comes early in the tail. A code block open where the tail starts is
 * reopened (the fence state there is read from the whole text), and one open at the end is closed, so the preview
 * renders as the final reply will. At most `budget` characters; `budget` must exceed OVERHEAD by a useful tail.
 */
export function streamPreview(text: string, budget: number): string {
  if (!Number.isInteger(budget) || budget < OVERHEAD + 40)
    throw new RangeError(`streamPreview: budget must be an integer >= ${OVERHEAD + 40}, got ${budget}`);
  let shown: string;
  if (text.length + MAX_FENCE_RUN + 1 <= budget) {
    shown = text;
  } else {
    let start = text.length - (budget - OVERHEAD);
    // Start at a line boundary if one comes soon; a long first line is cut instead of losing the tail.
    const nl = text.indexOf('\n', start - 1);
    let atLine = nl !== -1 && nl + 1 < text.length && nl + 1 - start <= (budget - OVERHEAD) / 4;
    const lineStart = atLine ? nl + 1 : text.lastIndexOf('\n', start - 1) + 1;
    let before = lineStart === 0 ? undefined : fenceAfterText(undefined, text.slice(0, lineStart - 1));
    if (!atLine && nl !== -1 && nl + 1 < text.length) {
      // A cut fence line shown after `…` would not read as one: start after it, in the state it leaves.
      const line = text.slice(lineStart, nl);
      const after = fenceAfter(before, line);
      if (after !== before) {
        before = after;
        atLine = true;
      }
    }
    if (atLine) start = nl + 1;
    const head = before ? `${before.reopen}\n…` : '…';
    shown = `${head}${atLine ? '\n' : ''}${text.slice(start)}`;
  }
  const open = fenceAfterText(undefined, shown);
  return open ? `${shown}\n${open.marker}` : shown;
}
