/**
 * Makes user text safe to type into the agent's terminal: CR/CRLF become LF, and every C0 and C1 control
 * character except LF and TAB is removed, so ESC sequences (including a bracketed-paste end marker), Ctrl-C, NUL
 * and friends arrive as inert text or not at all. Printable Unicode (RTL, combining marks, emoji) is kept.
 */
export function sanitizeInput(text: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point.
  return text.replace(/\r\n?/g, '\n').replace(/[\u0000-\u0008\u000B-\u001F\u007F-\u009F]/g, '');
}
