/** Discord's limit on message content, in characters (UTF-16 code units, as Discord counts). */
export const DISCORD_MAX_CONTENT = 2000;

const FENCE = /^\s*(`{3,}|~{3,})(.*)$/;

/**
 * Splits text into Discord messages of at most `limit` characters, on line boundaries where it can. A code block
 * cut across parts is closed at the end of one part and reopened (same fence, same language) at the start of the
 * next, so every part renders on its own. Lines longer than a part are cut hard. Never returns an empty part.
 */
export function splitMessage(text: string, limit = DISCORD_MAX_CONTENT): string[] {
  const body = text.replace(/\s+$/, '');
  if (body.trim() === '') return [];
  if (body.length <= limit) return [body];
  const parts: string[] = [];
  let lines: string[] = [];
  let size = 0;
  let fence: { marker: string; open: string } | undefined;
  // Room kept in every part for a closing fence line.
  const closeRoom = () => (fence ? fence.marker.length + 1 : 0);

  const flush = () => {
    if (lines.length === 0) return;
    const content = fence ? `${lines.join('\n')}\n${fence.marker}` : lines.join('\n');
    if (content.trim() !== '') parts.push(content);
    lines = fence ? [fence.open] : [];
    size = fence ? fence.open.length : 0;
  };

  const push = (line: string) => {
    const extra = (lines.length > 0 ? 1 : 0) + line.length;
    if (size + extra + closeRoom() > limit && lines.length > 0) flush();
    lines.push(line);
    size += (lines.length > 1 ? 1 : 0) + line.length;
  };

  for (const raw of body.split('\n')) {
    const m = FENCE.exec(raw);
    // Hard-cut a line that cannot fit in any part, leaving room for reopened fences on both sides.
    const room = limit - 2 * ((fence?.open.length ?? 0) + 4) - 1;
    let line = raw;
    while (line.length > room) {
      push(line.slice(0, room));
      line = line.slice(room);
    }
    push(line);
    if (m) {
      if (
        fence &&
        m[1]!.startsWith(fence.marker[0]!) &&
        m[1]!.length >= fence.marker.length &&
        m[2]!.trim() === ''
      ) {
        fence = undefined;
      } else if (!fence) {
        fence = { marker: m[1]!, open: raw.trim() };
      }
    }
  }
  if (lines.length > 0) {
    // The text itself left a fence open: leave it as written.
    const content = lines.join('\n');
    if (content.trim() !== '' && !(fence && lines.length === 1 && lines[0] === fence.open))
      parts.push(content);
  }
  return parts;
}
