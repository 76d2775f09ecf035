/** Longest saved file name, in characters (the extension is kept). */
export const MAX_NAME = 100;

/**
 * A file name safe to create inside a directory: letters, digits, `.`, `_`, `-`, `+`, `(`, `)` and spaces, no
 * leading dot (nothing hidden, never `.` or `..`), at most MAX_NAME characters. Undefined for a name that tries
 * to leave the directory (a path separator) or that is nothing once cleaned: those are refused, not guessed at.
 */
export function safeAttachmentName(name: string): string | undefined {
  if (/[/\\\0]/.test(name)) return undefined;
  const cleaned = name
    .normalize('NFKC')
    .replace(/[^A-Za-z0-9._+() -]/g, '_')
    .replace(/_{2,}/g, '_')
    .replace(/^[.\s]+/, '')
    .replace(/\s+$/, '');
  if (!/[A-Za-z0-9]/.test(cleaned)) return undefined;
  if (cleaned.length <= MAX_NAME) return cleaned;
  const dot = cleaned.lastIndexOf('.');
  const ext = dot > 0 && cleaned.length - dot <= 16 ? cleaned.slice(dot) : '';
  return cleaned.slice(0, MAX_NAME - ext.length) + ext;
}

/** `name` or, when taken, `name-2.ext`, `name-3.ext`…, still within MAX_NAME. */
export function uniqueName(name: string, taken: ReadonlySet<string>): string {
  if (!taken.has(name)) return name;
  const dot = name.lastIndexOf('.');
  const [stem, ext] = dot > 0 ? [name.slice(0, dot), name.slice(dot)] : [name, ''];
  for (let n = 2; ; n++) {
    const suffix = `-${n}${ext}`;
    const candidate = stem.slice(0, MAX_NAME - suffix.length) + suffix;
    if (!taken.has(candidate)) return candidate;
  }
}
