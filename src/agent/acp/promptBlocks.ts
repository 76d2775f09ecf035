import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { sanitizeInput } from '../sanitize.js';
import type { PromptInput } from '../types.js';

/**
 * Put before user text whose first visible character is `/`, `!` or `@`. kiro's slash router trims the text with
 * Rust's `trim()` (Unicode White_Space) and runs it as a command when it then starts with `/`; U+200B ZERO WIDTH
 * SPACE is not White_Space, so the text no longer starts with `/` and goes to the model unchanged to the eye.
 * `!` and `@` have no meaning over ACP today; they get the same guard so a future kiro cannot turn them into one.
 */
export const TEXT_GUARD = '\u200B';

/** User text as the model must see it: never a kiro command. */
export function guardText(text: string): string {
  const clean = sanitizeInput(text);
  return /^\s*[/!@]/u.test(clean) ? `${TEXT_GUARD}${clean}` : clean;
}

/** Images above this size go as links, not inline base64 (a JSON-RPC line must stay under the line cap). */
const MAX_INLINE_IMAGE_BYTES = 512 * 1024;

export type PromptBlock =
  | { type: 'text'; text: string }
  | { type: 'image'; data: string; mimeType: string; uri?: string }
  | { type: 'resource_link'; uri: string; name: string; mimeType?: string; size?: number };

/** The prompt of one message: its text (guarded), then one block per saved attachment. */
export function promptBlocks(input: PromptInput, images: boolean): PromptBlock[] {
  const blocks: PromptBlock[] = [];
  const text = guardText(input.text);
  const files = input.attachments ?? [];
  if (text.trim() !== '' || files.length === 0) blocks.push({ type: 'text', text });
  else blocks.push({ type: 'text', text: `(The user sent ${files.length} attached file(s) without text.)` });
  for (const f of files) {
    const uri = pathToFileURL(f.path).href;
    if (images && f.mimeType.startsWith('image/') && f.size <= MAX_INLINE_IMAGE_BYTES) {
      try {
        blocks.push({
          type: 'image',
          data: readFileSync(f.path).toString('base64'),
          mimeType: f.mimeType,
          uri,
        });
        continue;
      } catch {
        // unreadable now: fall back to the link, the agent can report it
      }
    }
    blocks.push({ type: 'resource_link', uri, name: f.name, mimeType: f.mimeType, size: f.size });
  }
  return blocks;
}
