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
  const flush = () => {
    if (lines.length === 0) return;
    const content = fence ? `${lines.join('\n')}\n${fence.marker}` : lines.join('\n');
    if (content.trim() !== '') parts.push(content);
    lines = fence ? [fence.open] : [];
    size = fence ? fence.open.length : 0;
  };

  /** Adds a line, first flushing when it would not fit with `closeRoom` left for a closing fence. */
  const push = (line: string, closeRoom: number) => {
    const extra = (lines.length > 0 ? 1 : 0) + line.length;
    if (size + extra + closeRoom > limit && lines.length > 0) flush();
    lines.push(line);
    size += (lines.length > 1 ? 1 : 0) + line.length;
  };

  for (const raw of body.split('\n')) {
    const m = FENCE.exec(raw);
    let next = fence;
    if (m) {
      const closes =
        fence &&
        m[1]!.startsWith(fence.marker[0]!) &&
        m[1]!.length >= fence.marker.length &&
        m[2]!.trim() === '';
      if (closes) next = undefined;
      else if (!fence) next = { marker: m[1]!, open: raw.trim() };
    }
    // Room for a closing fence, whether the fence is open before this line or is opened by it.
    const closeRoom = Math.max(fence ? fence.marker.length + 1 : 0, next ? next.marker.length + 1 : 0);
    // Hard-cut a line that cannot fit in any part, leaving room for reopened fences on both sides.
    const room = limit - 2 * ((fence?.open.length ?? 0) + 4) - 1;
    let line = raw;
    while (line.length > room) {
      push(line.slice(0, room), closeRoom);
      line = line.slice(room);
    }
    push(line, closeRoom);
    fence = next;
  }
  if (lines.length > 0) {
    // The text itself left a fence open: leave it as written.
    const content = lines.join('\n');
    if (content.trim() !== '' && !(fence && lines.length === 1 && lines[0] === fence.open))
      parts.push(content);
  }
  return parts;
}
