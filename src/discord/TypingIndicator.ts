import type { ThreadSink } from './ThreadSink.js';

/**
 * "The bot is typing…" per thread while its agent works: Discord shows it for 10 s, so it is renewed every
 * `intervalMs`. Timers are unref'd and all cleared on close.
 */
export class TypingIndicator {
  private readonly timers = new Map<string, NodeJS.Timeout>();

  constructor(private readonly intervalMs: number) {}

  start(threadId: string, sink: ThreadSink): void {
    if (this.timers.has(threadId)) return;
    void sink.typing();
    const timer = setInterval(() => void sink.typing(), this.intervalMs);
    timer.unref();
    this.timers.set(threadId, timer);
  }

  stop(threadId: string): void {
    clearInterval(this.timers.get(threadId));
    this.timers.delete(threadId);
  }

  close(): void {
    for (const t of this.timers.values()) clearInterval(t);
    this.timers.clear();
  }
}
