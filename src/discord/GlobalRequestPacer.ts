import { DefaultRestOptions, type RESTOptions } from 'discord.js';

export interface GlobalRequestPacerOptions {
  /** Requests at most that Discord can count in any one window. Default 45 (Discord's limit is 50). */
  readonly limit?: number;
  /** Discord's window, ms. Default 1000. */
  readonly windowMs?: number;
  /** Wall clock, ms. Default `Date.now`. */
  readonly now?: () => number;
}

/** Discord does not count interaction callbacks and interaction webhooks (follow-ups) against the global limit. */
const NOT_GLOBAL = /\/interactions\/\d+\/[^/]+\/callback|\/webhooks\/\d+\/[^/?]+/;

/**
 * Keeps the bot under Discord's global limit (50 requests per second) in every window Discord can draw, whatever
 * the latencies. discord.js limits with a fixed one-second window that opens when a request is sent; Discord's (and
 * the emulator's) opens when a request arrives, and a request arrives at any moment between its send and its
 * answer. Measured in botProcess.test.ts: with discord.js alone at 40/s, 60 to 78 requests reached one second of
 * Discord's, and ten threads answering at once drew global 429s; a sliding window over send times still drew some
 * on a loaded machine, where requests queue inside the HTTP client after they were counted as sent.
 *
 * The rule here needs no guess at latency: a request may go only while the requests in flight plus those answered
 * within the last window number fewer than `limit`. Any window of arrivals then holds at most `limit`: of the
 * requests arriving in it, the one sent last found every other one either still in flight or answered after the
 * window opened, which is less than one window before it was sent.
 */
export class GlobalRequestPacer {
  readonly limit: number;
  readonly windowMs: number;
  private readonly now: () => number;
  private inFlight = 0;
  /** Answer times within the last window, oldest first. */
  private readonly answered: number[] = [];
  /** Requests waiting for a slot, first come first served. */
  private readonly waiting: { grant: () => void; signal: AbortSignal | undefined; onAbort: () => void }[] =
    [];
  private timer: NodeJS.Timeout | undefined;

  constructor(options: GlobalRequestPacerOptions = {}) {
    this.limit = options.limit ?? 45;
    this.windowMs = options.windowMs ?? 1000;
    this.now = options.now ?? Date.now;
    if (!Number.isInteger(this.limit) || this.limit < 1)
      throw new RangeError(`GlobalRequestPacer: limit must be an integer >= 1, got ${this.limit}`);
    if (!(this.windowMs > 0))
      throw new RangeError(`GlobalRequestPacer: windowMs must be > 0, got ${this.windowMs}`);
  }

  /**
   * Resolves when one more request may be sent (first come, first served) with the function to call once it has
   * been answered (or has failed); rejects if `signal` aborts first.
   */
  take(signal?: AbortSignal): Promise<() => void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const entry = {
        signal,
        grant: () => {
          signal?.removeEventListener('abort', entry.onAbort);
          this.inFlight++;
          let done = false;
          resolve(() => {
            if (done) return;
            done = true;
            this.inFlight--;
            this.answered.push(this.now());
            this.pump();
          });
        },
        onAbort: () => {
          const i = this.waiting.indexOf(entry);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(signal?.reason);
          this.pump();
        },
      };
      signal?.addEventListener('abort', entry.onAbort, { once: true });
      this.waiting.push(entry);
      this.pump();
    });
  }

  /** The REST option `makeRequest`: globally counted requests wait for their slot, then go out as discord.js sends them. */
  makeRequest(
    inner: RESTOptions['makeRequest'] = DefaultRestOptions.makeRequest,
  ): RESTOptions['makeRequest'] {
    return async (url, init) => {
      if (NOT_GLOBAL.test(new URL(url).pathname)) return inner(url, init);
      const answered = await this.take(init.signal ?? undefined);
      try {
        return await inner(url, init);
      } finally {
        answered();
      }
    };
  }

  /** Grants what the rule allows now, in order; when something still waits, looks again as the oldest answer ages out. */
  private pump(): void {
    const now = this.now();
    while (this.answered.length > 0 && this.answered[0]! <= now - this.windowMs) this.answered.shift();
    while (this.waiting.length > 0 && this.inFlight + this.answered.length < this.limit)
      this.waiting.shift()!.grant();
    clearTimeout(this.timer);
    this.timer = undefined;
    // With everything in flight, an answer calls pump(); otherwise the oldest answer leaving the window frees a slot.
    if (this.waiting.length > 0 && this.answered.length > 0) {
      // Ref'd: a request waiting for its slot is work the process must still do (a shutdown's last edits).
      this.timer = setTimeout(() => this.pump(), this.answered[0]! + this.windowMs - now);
    }
  }
}
