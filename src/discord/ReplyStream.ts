import { EditPacer } from './EditPacer.js';
import { splitMessage } from './splitMessage.js';
import { streamPreview } from './streamPreview.js';
import type { ThreadSink } from './ThreadSink.js';

/** Discord refuses edits of messages older than an hour beyond a small allowance (code 30046). */
export const DISCORD_EDIT_WINDOW_MS = 60 * 60_000;

export interface ReplyStreamOptions {
  /** Minimum time between two edits of the streaming message, ms (Discord: 1.5 s). */
  readonly editIntervalMs?: number;
  /** Parts a final reply may take at most; the rest is cut with a note (a flood must not become 100 messages). */
  readonly maxParts?: number;
  /** Characters of a part. */
  readonly partLimit?: number;
  /** Wall clock, ms since the epoch (Discord's message timestamps). Default Date.now; tests move it by hand. */
  readonly now?: () => number;
  /**
   * Age at which the streaming message is left (marked as continued) and the turn goes on in a new one, ms.
   * Default 50 minutes: well inside Discord's hour, so the last edit of the old message is still accepted.
   */
  readonly rolloverAfterMs?: number;
  /** Age after which a message is never edited again, ms. Default 59 minutes (Discord: 60). */
  readonly maxEditAgeMs?: number;
}

/** Characters of a message kept for the note under a preview (`-# ⏳ working…`, `-# (session ended: …)`). */
const NOTE_ROOM = 100;
const WORKING = '-# ⏳ working…';
const CONTINUED = '-# ⏳ still working: continued below';

/**
 * Streams one turn into one Discord message, edited at most every `editIntervalMs`, then replaces it with the
 * final reply split into parts. A turn that streams for longer than `rolloverAfterMs` continues in a new message
 * (Discord refuses edits of messages older than an hour), and no message older than `maxEditAgeMs` is edited: the
 * final reply is then posted anew. `update()` is cheap to call on every chunk of agent output.
 */
export class ReplyStream {
  private readonly sink: ThreadSink;
  private readonly read: () => string;
  private readonly pacer: EditPacer;
  private readonly maxParts: number;
  private readonly partLimit: number;
  private readonly now: () => number;
  private readonly rolloverAfterMs: number;
  private readonly maxEditAgeMs: number;
  private messageId: string | undefined;
  /** When the streaming message was posted, by `now`. */
  private postedAt = 0;
  /** The preview the streaming message shows now, without its note. */
  private preview = '';
  /** Rolls the message over when no output comes to do it (a silent agent). */
  private rolloverTimer: NodeJS.Timeout | undefined;
  private done = false;

  constructor(sink: ThreadSink, read: () => string, options: ReplyStreamOptions = {}) {
    this.sink = sink;
    this.read = read;
    this.pacer = new EditPacer(options.editIntervalMs ?? 1500, () => this.refresh());
    this.maxParts = options.maxParts ?? 8;
    this.partLimit = options.partLimit ?? 2000;
    this.now = options.now ?? Date.now;
    this.maxEditAgeMs = options.maxEditAgeMs ?? DISCORD_EDIT_WINDOW_MS - 60_000;
    this.rolloverAfterMs = Math.min(options.rolloverAfterMs ?? 50 * 60_000, this.maxEditAgeMs);
  }

  /** Agent output arrived: schedule a refresh of the streaming message. */
  update(): void {
    if (!this.done) this.pacer.poke();
  }

  /** True while the streaming message may still be edited. */
  private editable(): boolean {
    return this.messageId !== undefined && this.now() - this.postedAt < this.maxEditAgeMs;
  }

  private async refresh(): Promise<void> {
    if (this.done) return;
    const text = this.read();
    if (text.trim() === '') return;
    if (this.messageId !== undefined && this.now() - this.postedAt >= this.rolloverAfterMs)
      await this.rollover();
    const preview = streamPreview(text, this.partLimit - NOTE_ROOM);
    if (preview === this.preview && this.messageId !== undefined) return;
    const content = `${preview}\n${WORKING}`;
    this.pacer.edited();
    this.preview = preview;
    if (this.messageId !== undefined) {
      await this.sink.edit(this.messageId, content);
      return;
    }
    this.postedAt = this.now();
    this.messageId = await this.sink.send(content);
    if (this.messageId !== undefined) this.armRollover();
  }

  /** Leaves the streaming message as it is, marked as continued (when it can still be edited); the next refresh
   * posts a new one. */
  private async rollover(): Promise<void> {
    clearTimeout(this.rolloverTimer);
    this.rolloverTimer = undefined;
    if (this.editable() && this.preview !== '')
      await this.sink.edit(this.messageId!, `${this.preview}\n${CONTINUED}`);
    this.messageId = undefined;
  }

  private armRollover(): void {
    clearTimeout(this.rolloverTimer);
    const wait = Math.max(0, this.postedAt + this.rolloverAfterMs - this.now());
    this.rolloverTimer = setTimeout(() => {
      this.rolloverTimer = undefined;
      void this.pacer.run(async () => {
        if (this.done || this.messageId === undefined) return;
        await this.rollover();
        await this.refresh();
      });
    }, wait);
    this.rolloverTimer.unref();
  }

  private stop(): void {
    this.done = true;
    this.pacer.stop();
    clearTimeout(this.rolloverTimer);
    this.rolloverTimer = undefined;
  }

  /**
   * Posts the final reply: the streaming message (while it may be edited) becomes part 1, further parts follow;
   * `note` goes under the last part when it fits.
   */
  async finish(text: string, note?: string): Promise<void> {
    this.stop();
    await this.pacer.settled;
    let parts = splitMessage(text, this.partLimit);
    if (parts.length > this.maxParts) {
      const dropped = parts.slice(this.maxParts - 1).reduce((n, p) => n + p.length, 0);
      parts = [...parts.slice(0, this.maxParts - 1), `… (${dropped} more characters of output not shown)`];
    }
    if (parts.length === 0) parts = ['(the agent finished without output)'];
    // A note (stop reason, usage) goes under the last part when it fits there, else in a message of its own.
    if (note) {
      const last = parts.length - 1;
      if (parts[last]!.length + 1 + note.length <= this.partLimit) parts[last] = `${parts[last]}\n${note}`;
      else parts.push(note);
    }
    let first = 0;
    if (this.editable()) {
      await this.sink.edit(this.messageId!, parts[0]!);
      first = 1;
    }
    for (const part of parts.slice(first)) await this.sink.send(part);
  }

  /** Stops streaming without a final reply (the session ended); the streaming message is marked as cut off, or,
   * when it is too old to edit or was never posted (the agent died right after its last words, before the next
   * refresh), what it would show is posted anew: text the agent said is never dropped. */
  async abort(note: string): Promise<void> {
    this.stop();
    await this.pacer.settled;
    const text = this.read();
    if (this.messageId === undefined && text.trim() === '') return;
    const shown = text.trim() === '' ? this.preview : streamPreview(text, this.partLimit - NOTE_ROOM);
    const content = `${shown}\n-# ${note.slice(0, NOTE_ROOM - 4)}`;
    if (this.messageId !== undefined && this.editable()) await this.sink.edit(this.messageId, content);
    else await this.sink.send(content);
  }
}
