import type { AgentProfile } from '../AgentProfile.js';

const PASTE_START = '\x1b[200~';
const PASTE_END = '\x1b[201~';
/** Zero-width characters the classic UI deletes before dispatch: a fence broken by one is whole again for the model. */
const ZWSP = '\u200b';
const ZERO_WIDTH = /\u200B|\u200C|\u200D|\u2060|\uFEFF/g;
const FENCE = '```';

/** How many ``` the classic UI's Enter rule counts (non-overlapping, left to right). */
export function fenceCount(text: string): number {
  return text.split(FENCE).length - 1;
}

/**
 * The text a message is typed as, so that it always submits and is always text for the model (shared/kiro-cli.md,
 * "Input" and "Dispatch"):
 * - CR and CRLF become LF, a Tab becomes four spaces (a Tab completes), every other control character is dropped
 *   (Ctrl-S/T/V/Z are bound keys; ESC would end the paste);
 * - a first character the UI would dispatch (`!` shell, `/` command, `@` prompt) gets the profile's visible
 *   prefix, and so does an `@` after whitespace (file inlining); zero-width characters cannot do this: they are
 *   deleted before dispatch;
 * - an odd number of ``` gets one broken by a zero-width space, and a final `\` gets one after it, so Enter
 *   submits instead of adding a line; the UI deletes those zero-width spaces again before the model sees the text.
 */
export function literalText(text: string, profile: AgentProfile): string {
  let s = text
    .replace(/\r\n?/g, '\n')
    .replace(/\t/g, '    ')
    // biome-ignore lint/suspicious/noControlCharactersInRegex: dropping control characters is the point.
    .replace(/[\u0000-\u0009\u000B-\u001F\u007F-\u009F]/g, '')
    // The UI deletes zero-width characters before it looks at the text: so does this, to see what it will see.
    .replace(ZERO_WIDTH, '')
    .replace(/\n+$/, '');
  const p = profile.literalPrefix;
  // The UI trims before it looks at the first character.
  if (/^[!/@]/.test(s.trimStart())) s = p + s.trimStart();
  s = s.replace(/(\s)@/g, `$1${p}@`);
  // Breaking the last fence can make a new one of the backticks before it (````` ): repeat until even.
  while (fenceCount(s) % 2 === 1) {
    const i = s.lastIndexOf(FENCE);
    s = `${s.slice(0, i + 2)}${ZWSP}${s.slice(i + 2)}`;
  }
  if (s.endsWith('\\')) s += ZWSP;
  return s;
}

/** The bytes typed at the agent's read: the text as one bracketed paste (no key bindings inside), then Enter. */
export function typedInput(text: string, profile: AgentProfile): string {
  return `${PASTE_START}${literalText(text, profile)}${PASTE_END}${profile.submit}`;
}
