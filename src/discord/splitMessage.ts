import { fenceAfter, fenceRunAt, isSpace, MAX_FENCE_RUN, type OpenFence, type WorkMeter } from './fences.js';

/** Discord's limit on message content, in characters (UTF-16 code units, as Discord counts). */
export const DISCORD_MAX_CONTENT = 2000;
/** Smallest limit accepted: a part must hold a reopened fence, a closing one and some text between them. */
export const MIN_SPLIT_LIMIT = 100;
/** How many cut positions before the longest possible one are tried, to avoid a piece that reads as a fence. */
const CUT_WINDOW = 24;
/** Room kept for any closing fence while a long line is cut. */
const MAX_CLOSE = MAX_FENCE_RUN + 1;

/** One message of a split text, with what the splitter added to it. */
export interface SplitPart {
  /** The message: `reopen` and a newline when a fence was open at the cut, `text`, a newline and `close` when a
   * fence is open at its end. */
  readonly content: string;
  /** This part's slice of the input. */
  readonly text: string;
  /** The fence line added at the start (a fence was open where the part begins). */
  readonly reopen?: string;
  /** The fence line added at the end (a fence is open where the part ends, the last part included). */
  readonly close?: string;
  /** What separated this part's text from the next one's in the input: a newline, or nothing where a line longer
   * than a part was cut; nothing after the last part. */
  readonly joinsNext: '\n' | '';
}

/** Index of the first non-whitespace character in `line` from `from`, looking no further than `to`. */
function spacesEnd(line: string, from: number, to: number, meter?: WorkMeter): number {
  let i = from;
  while (i < to && i < line.length && isSpace(line[i])) i++;
  if (meter) meter.steps += i - from + 1;
  return i;
}

const isHigh = (c: number) => c >= 0xd800 && c <= 0xdbff;
const isLow = (c: number) => c >= 0xdc00 && c <= 0xdfff;

/**
 * Splits text (trailing whitespace dropped) into parts of at most `limit` characters, on line boundaries where it
 * can, in time linear in the text. A code block cut across parts is closed at the end of one and reopened (same
 * marker, same language) at the start of the next, and a block the text leaves open is closed at its end, so every
 * part renders on its own (fence rules: fences.ts). A line longer than a part is cut hard, never inside a surrogate
 * pair, and where possible not where its rest would read as a fence line. Parts are counted over the lines as
 * emitted, so a piece of a cut line that does read as a fence (a long run of whitespace before a fence run, in a
 * line longer than a part) is balanced like any other line.
 *
 * The texts joined with their `joinsNext` give back the input without its trailing whitespace.
 */
export function splitMessageParts(text: string, limit = DISCORD_MAX_CONTENT, meter?: WorkMeter): SplitPart[] {
  if (!Number.isInteger(limit) || limit < MIN_SPLIT_LIMIT)
    throw new RangeError(`splitMessage: limit must be an integer >= ${MIN_SPLIT_LIMIT}, got ${limit}`);
  const body = text.trimEnd();
  if (meter) meter.steps += text.length + 1;
  if (body.trimStart() === '') return [];

  const parts: SplitPart[] = [];
  /** The fence open after the lines placed so far. */
  let fence: OpenFence | undefined;
  /** The current part's reopened fence line, its lines, and its size without a closing fence. */
  let reopen: string | undefined;
  let lines: string[] = [];
  let size = 0;

  const closeLen = (f: OpenFence | undefined) => (f ? f.marker.length + 1 : 0);
  const begin = () => {
    reopen = fence?.reopen;
    lines = [];
    size = reopen?.length ?? 0;
  };
  /** The part's size with `line` added. */
  const withLine = (line: string) => size + (lines.length > 0 || reopen !== undefined ? 1 : 0) + line.length;
  const append = (line: string, next: OpenFence | undefined) => {
    size = withLine(line);
    lines.push(line);
    fence = next;
  };
  const flush = (joinsNext: '\n' | '') => {
    const partText = lines.join('\n');
    const close = fence?.marker;
    const content =
      (reopen === undefined ? '' : `${reopen}\n`) + partText + (close === undefined ? '' : `\n${close}`);
    if (meter) meter.steps += content.length + 1;
    parts.push({
      content,
      text: partText,
      joinsNext,
      ...(reopen !== undefined && { reopen }),
      ...(close !== undefined && { close }),
    });
    begin();
  };

  /** Cuts a line that does not fit in an empty part into pieces; each but the last fills a part of its own. */
  const cut = (line: string) => {
    let rest = line;
    for (;;) {
      if (withLine(rest) <= limit) {
        const next = fenceAfter(fence, rest, meter);
        if (withLine(rest) + closeLen(next) <= limit) return append(rest, next);
      }
      const max = limit - withLine('') - MAX_CLOSE;
      let at = -1;
      // Walking left through whitespace, the first non-whitespace after it is known: one scan per cut.
      let wsEnd = -1;
      for (let j = max; j > max - CUT_WINDOW && j > 0; j--) {
        const ws = isSpace(rest[j]);
        if (!ws) wsEnd = -1;
        else if (wsEnd === -1) wsEnd = j === max ? spacesEnd(rest, j, j + limit, meter) : j + 1;
        if (isHigh(rest.charCodeAt(j - 1)) && isLow(rest.charCodeAt(j))) continue;
        // The piece starting here reads as a fence line when a fence run follows its leading whitespace (a piece
        // that is all whitespace, at most `limit` long, does not).
        const first = ws ? wsEnd : j;
        if (!(first - j < limit && fenceRunAt(rest, first, meter))) {
          at = j;
          break;
        }
      }
      if (at === -1) at = isHigh(rest.charCodeAt(max - 1)) && isLow(rest.charCodeAt(max)) ? max - 1 : max;
      const piece = rest.slice(0, at);
      append(piece, fenceAfter(fence, piece, meter));
      flush('');
      rest = rest.slice(at);
    }
  };

  const place = (line: string) => {
    const next = fenceAfter(fence, line, meter);
    if (withLine(line) + closeLen(next) <= limit) return append(line, next);
    if (lines.length > 0) {
      flush('\n');
      if (withLine(line) + closeLen(next) <= limit) return append(line, next);
    }
    cut(line);
  };

  begin();
  for (let from = 0; ; ) {
    const nl = body.indexOf('\n', from);
    place(nl === -1 ? body.slice(from) : body.slice(from, nl));
    if (nl === -1) break;
    from = nl + 1;
  }
  flush('');
  return parts;
}

/**
 * Splits text into Discord messages of at most `limit` characters (see splitMessageParts). Never returns an empty
 * or whitespace-only part: Discord refuses those (50006), so a stretch of whitespace that fills a part alone is
 * dropped.
 */
export function splitMessage(text: string, limit = DISCORD_MAX_CONTENT): string[] {
  return splitMessageParts(text, limit)
    .filter((p) => p.content.trim() !== '')
    .map((p) => p.content);
}
