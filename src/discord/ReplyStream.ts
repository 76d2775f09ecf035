import { splitMessage } from './splitMessage.js';
import { streamPreview } from './streamPreview.js';
import type { ThreadSink } from './ThreadSink.js';

export interface ReplyStreamOptions {
  /** Minimum time between two edits of the streaming message, ms (Discord: 1.5 s). */
  readonly editIntervalMs?: number;
  /** Parts a final reply may take at most; the rest is cut with a note (a flood must not become 100 messages). */
  readonly maxParts?: number;
  /** Characters of a part. */
  readonly partLimit?: number;
}

/** Characters of a message kept for the note under a preview (`-# ⏳ working…`, `-# (session ended: …)`). */
const NOTE_ROOM = 100;

/**
 * Streams one turn into one Discord message, edited at most every `editIntervalMs`, then replaces it with the
 * final reply split into parts. `update()` is cheap to call on every chunk of agent output.
 */
export class ReplyStream {
  private readonly sink: ThreadSink;
  private readonly read: () => string;
  private readonly intervalMs: number;
  private readonly maxParts: number;
  private readonly partLimit: number;
  private messageId: string | undefined;
  /** The preview the streaming message shows now, without its note. */
  private preview = '';
  private lastEditAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private inFlight: Promise<void> = Promise.resolve();
  private done = false;

  constructor(sink: ThreadSink, read: () => string, options: ReplyStreamOptions = {}) {
    this.sink = sink;
    this.read = read;
    this.intervalMs = options.editIntervalMs ?? 1500;
    this.maxParts = options.maxParts ?? 8;
    this.partLimit = options.partLimit ?? 2000;
  }

  /** Agent output arrived: schedule a refresh of the streaming message. */
  update(): void {
    if (this.done || this.timer) return;
    const wait = Math.max(0, this.lastEditAt + this.intervalMs - performance.now());
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.inFlight = this.inFlight.then(() => this.refresh());
    }, wait);
    this.timer.unref();
  }

  private async refresh(): Promise<void> {
    if (this.done) return;
    const text = this.read();
    if (text.trim() === '') return;
    const preview = streamPreview(text, this.partLimit - NOTE_ROOM);
    if (preview === this.preview) return;
    const content = `${preview}\n-# ⏳ working…`;
    this.lastEditAt = performance.now();
    this.preview = preview;
    if (this.messageId === undefined) this.messageId = await this.sink.send(content);
    else await this.sink.edit(this.messageId, content);
  }

  /** Posts the final reply: the streaming message becomes part 1, further parts follow. */
  async finish(text: string, note?: string): Promise<void> {
    this.done = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
    let parts = splitMessage(text, this.partLimit);
    if (parts.length > this.maxParts) {
      const dropped = parts.slice(this.maxParts - 1).reduce((n, p) => n + p.length, 0);
      parts = [...parts.slice(0, this.maxParts - 1), `… (${dropped} more characters of output not shown)`];
    }
    if (note) parts.push(note);
    if (parts.length === 0) parts = ['(the agent finished without output)'];
    let first = 0;
    if (this.messageId !== undefined) {
      await this.sink.edit(this.messageId, parts[0]!);
      first = 1;
    }
    for (const part of parts.slice(first)) await this.sink.send(part);
  }

  /** Stops streaming without a final reply (the session ended); the streaming message is marked as cut off. */
  async abort(note: string): Promise<void> {
    this.done = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.inFlight;
    if (this.messageId !== undefined) {
      const text = this.read();
      const shown = text.trim() === '' ? this.preview : streamPreview(text, this.partLimit - NOTE_ROOM);
      await this.sink.edit(this.messageId, `${shown}\n-# ${note.slice(0, NOTE_ROOM - 4)}`);
    }
  }
}
