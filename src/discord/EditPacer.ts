/**
 * Paces the edits of one Discord message: `poke()` runs `refresh` once the edit interval has passed since the last
 * edit (`edited()` marks one), at most one run scheduled at a time, and every run is chained after the one before
 * so two never overlap. The timer is unref'd and cleared by `stop()`.
 */
export class EditPacer {
  private lastEditAt = Number.NEGATIVE_INFINITY;
  private timer: NodeJS.Timeout | undefined;
  private chain: Promise<void> = Promise.resolve();

  constructor(
    private readonly intervalMs: number,
    private readonly refresh: () => Promise<void>,
  ) {}

  /** Schedules a refresh, unless one is scheduled already. */
  poke(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.run(this.refresh);
    }, this.wait);
    this.timer.unref();
  }

  /** Runs `job` after whatever is in flight; resolves when it is done. */
  run(job: () => Promise<void>): Promise<void> {
    this.chain = this.chain.then(job);
    return this.chain;
  }

  /** An edit was just made: the next one waits a whole interval. */
  edited(): void {
    this.lastEditAt = performance.now();
  }

  /** How long until the next edit may be made, ms. */
  get wait(): number {
    return Math.max(0, this.lastEditAt + this.intervalMs - performance.now());
  }

  /** What is in flight (resolves at once when nothing is). */
  get settled(): Promise<void> {
    return this.chain;
  }

  /** Cancels the scheduled refresh; a run in flight finishes. */
  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }
}
