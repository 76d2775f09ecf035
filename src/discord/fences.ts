/** A code fence open at some point of a text: what closes it and how a later message reopens it. */
export interface OpenFence {
  /** The run that opened it (3 to MAX_FENCE_RUN backticks or tildes); a closing line repeats it. */
  readonly marker: string;
  /** The line that reopens it in a later message: the marker and the info string's first word, shortened. */
  readonly reopen: string;
}

/**
 * Longest run of backticks or tildes that counts as a fence. Longer runs are text: a fence is closed and reopened
 * in every part it spans, and an unbounded marker would leave no room in a 2000-character message.
 */
export const MAX_FENCE_RUN = 16;
/** Longest language tag kept when a fence is reopened (`typescript` is 10). */
const MAX_INFO = 20;
/** Longest line `reopen` can be; `close` is at most MAX_FENCE_RUN. */
export const MAX_REOPEN = MAX_FENCE_RUN + 1 + MAX_INFO;

/** Counts the characters the fence and splitting code examines, for the linear-time property tests. */
export interface WorkMeter {
  steps: number;
}

const SPACES = /\s*/y;

/** Index of the first character at or after `from` that is not whitespace (as `\s` counts it). */
function skipSpaces(line: string, from: number): number {
  SPACES.lastIndex = from;
  SPACES.exec(line);
  return SPACES.lastIndex;
}

/**
 * The fence state after one line. The rules are CommonMark's, simplified and bounded: a fence line is optional
 * whitespace, then a run of 3 to MAX_FENCE_RUN backticks or tildes (for backticks, with no backtick after it, or it
 * is inline code). With no fence open, a fence line opens one. With a fence open, a line closes it when its run is
 * of the same character, at least as long, and followed only by whitespace; every other line is content.
 */
export function fenceAfter(
  open: OpenFence | undefined,
  line: string,
  meter?: WorkMeter,
): OpenFence | undefined {
  const start = skipSpaces(line, 0);
  const ch = line[start];
  if (ch !== '`' && ch !== '~') {
    if (meter) meter.steps += start + 1;
    return open;
  }
  let end = start;
  while (end < line.length && line[end] === ch && end - start <= MAX_FENCE_RUN) end++;
  const run = end - start;
  if (meter) meter.steps += end + 1;
  if (run < 3 || run > MAX_FENCE_RUN || line[end] === ch) return open;
  if (open) {
    const closes =
      ch === open.marker[0] && run >= open.marker.length && skipSpaces(line, end) === line.length;
    if (meter) meter.steps += line.length - end;
    return closes ? undefined : open;
  }
  if (ch === '`' && line.includes('`', end)) {
    if (meter) meter.steps += line.length - end;
    return undefined;
  }
  const marker = ch.repeat(run);
  const infoAt = skipSpaces(line, end);
  let infoEnd = infoAt;
  while (infoEnd < line.length && infoEnd - infoAt < MAX_INFO && !isSpace(line[infoEnd])) infoEnd++;
  const info = line.slice(infoAt, infoEnd);
  if (meter) meter.steps += infoEnd - end;
  // An info string starting with the fence character would lengthen the run: keep them apart.
  return { marker, reopen: info[0] === ch ? `${marker} ${info}` : marker + info };
}

/** The fence state after `text`, line by line from `open`. */
export function fenceAfterText(
  open: OpenFence | undefined,
  text: string,
  meter?: WorkMeter,
): OpenFence | undefined {
  let state = open;
  let from = 0;
  for (;;) {
    const nl = text.indexOf('\n', from);
    const line = nl === -1 ? text.slice(from) : text.slice(from, nl);
    state = fenceAfter(state, line, meter);
    if (nl === -1) return state;
    from = nl + 1;
  }
}

const SPACE = /\s/;

/** True for a whitespace character (as `\s` counts it). */
export function isSpace(ch: string | undefined): boolean {
  return ch !== undefined && SPACE.test(ch);
}

/** True when a run of 3 to MAX_FENCE_RUN backticks or tildes (the whole run) starts at `at`. */
export function fenceRunAt(line: string, at: number, meter?: WorkMeter): boolean {
  const ch = line[at];
  if (ch !== '`' && ch !== '~') return false;
  let end = at;
  while (end < line.length && line[end] === ch && end - at <= MAX_FENCE_RUN) end++;
  if (meter) meter.steps += end - at + 1;
  const run = end - at;
  return run >= 3 && run <= MAX_FENCE_RUN && line[end] !== ch;
}
