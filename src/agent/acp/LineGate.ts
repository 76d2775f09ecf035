/** Default cap on one line of agent stdout, bytes (UTF-8). See the README ("ACP line cap"). */
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

/** How much of an oversized line is kept to tell what it was (its id sits at the end: kiro writes `result` first). */
const KEEP = 256;

export interface OversizedLine {
  readonly bytes: number;
  /** The first and last few hundred characters of the line. */
  readonly head: string;
  readonly tail: string;
}

export interface LineGateHandlers {
  /** A JSON-RPC 2.0 message, as its original text (without the newline). */
  readonly protocol: (line: string, message: Record<string, unknown>) => void;
  /** Anything else the agent printed on stdout (log lines, garbage, half a frame before an exit). */
  readonly other: (line: string) => void;
  /** A line over the cap: dropped while it streamed, never buffered whole. */
  readonly oversized: (line: OversizedLine) => void;
}

/**
 * Cuts agent stdout into lines and lets only JSON-RPC messages through, so a protocol client never sees garbage
 * and never buffers a line without bound. Memory held is at most the cap plus one chunk.
 */
export class LineGate {
  private readonly max: number;
  private readonly on: LineGateHandlers;
  private parts: string[] = [];
  private bytes = 0;
  private overflow: { head: string; tail: string } | undefined;

  constructor(handlers: LineGateHandlers, maxLineBytes = DEFAULT_MAX_LINE_BYTES) {
    this.on = handlers;
    this.max = maxLineBytes;
  }

  /** Feeds decoded text (the stream's decoder keeps UTF-8 sequences whole across chunks). */
  push(chunk: string): void {
    let at = 0;
    while (at < chunk.length) {
      const nl = chunk.indexOf('\n', at);
      const end = nl < 0 ? chunk.length : nl;
      if (end > at) this.add(chunk.slice(at, end));
      if (nl < 0) return;
      this.endLine();
      at = nl + 1;
    }
  }

  /** At end of stream: what is left is an unterminated line (half a frame); reported as non-protocol. */
  flush(): void {
    if (this.overflow) {
      this.endLine();
      return;
    }
    if (this.parts.length === 0) return;
    const line = this.parts.join('');
    this.parts = [];
    this.bytes = 0;
    if (line.trim() !== '') this.on.other(line);
  }

  private add(piece: string): void {
    if (this.overflow) {
      this.bytes += Buffer.byteLength(piece);
      this.overflow.tail = (this.overflow.tail + piece).slice(-KEEP);
      return;
    }
    this.parts.push(piece);
    this.bytes += Buffer.byteLength(piece);
    if (this.bytes > this.max) {
      const text = this.parts.join('');
      this.overflow = { head: text.slice(0, KEEP), tail: text.slice(-KEEP) };
      this.parts = [];
    }
  }

  private endLine(): void {
    const overflow = this.overflow;
    const bytes = this.bytes;
    this.overflow = undefined;
    this.bytes = 0;
    if (overflow) {
      this.on.oversized({ bytes, head: overflow.head, tail: overflow.tail });
      return;
    }
    const line = this.parts.length === 1 ? this.parts[0]! : this.parts.join('');
    this.parts = [];
    const trimmed = line.trim();
    if (trimmed === '') return;
    const message = trimmed.startsWith('{') ? parseRpc(trimmed) : undefined;
    if (message) this.on.protocol(trimmed, message);
    else this.on.other(line);
  }
}

/** A JSON-RPC 2.0 request, notification or response, or undefined for anything else. */
export function parseRpc(text: string): Record<string, unknown> | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const m = value as Record<string, unknown>;
  if (m.jsonrpc !== '2.0') return undefined;
  if (typeof m.method === 'string') return m;
  if ('id' in m && ('result' in m || 'error' in m)) return m;
  return undefined;
}
