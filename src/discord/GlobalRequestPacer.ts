import { DefaultRestOptions, type RESTOptions } from 'discord.js';

export interface GlobalRequestPacerOptions {
  /** Requests at most in any span of `spanMs`, counted when they are sent. Default 45. */
  readonly limit?: number;
  /** The span, ms; what it exceeds one second by is the spread of latencies tolerated. Default 1250. */
  readonly spanMs?: number;
  /** Wall clock, ms. Default `Date.now`. */
  readonly now?: () => number;
}

/** Discord does not count interaction callbacks and interaction webhooks (follow-ups) against the global limit. */
const NOT_GLOBAL = /\/interactions\/\d+\/[^/]+\/callback|\/webhooks\/\d+\/[^/?]+/;

function wait(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    // Ref'd: a request waiting for its slot is work the process must still do (a shutdown's last edits).
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Keeps the bot under Discord's global limit (50 requests per second) in every window Discord can draw. discord.js
 * limits with a fixed one-second window that opens when a request is sent; Discord's (and the emulator's) opens when
 * a request arrives, one latency later. A burst across discord.js's window boundary therefore lands in one window
 * of Discord's, up to twice discord.js's limit in it: measured in botProcess.test.ts, 60 to 78 requests within one
 * second with discord.js at 40/s, and global 429s when ten threads answered at once. This pacer counts sends over a
 * sliding span longer than a second: no span of `spanMs` holds more than `limit`, so any one-second window of
 * arrivals holds at most `limit` as long as latencies differ by less than `spanMs` - 1000 ms.
 */
export class GlobalRequestPacer {
  readonly limit: number;
  readonly spanMs: number;
  private readonly now: () => number;
  /** Send times within the last span, oldest first. */
  private readonly sent: number[] = [];
  /** The previous request's turn: requests get their slots in the order they asked. */
  private queue: Promise<void> = Promise.resolve();

  constructor(options: GlobalRequestPacerOptions = {}) {
    this.limit = options.limit ?? 45;
    this.spanMs = options.spanMs ?? 1250;
    this.now = options.now ?? Date.now;
    if (!Number.isInteger(this.limit) || this.limit < 1)
      throw new RangeError(`GlobalRequestPacer: limit must be an integer >= 1, got ${this.limit}`);
    if (!(this.spanMs > 0))
      throw new RangeError(`GlobalRequestPacer: spanMs must be > 0, got ${this.spanMs}`);
  }

  /** Resolves when one more request may be sent (first come, first served); rejects if `signal` aborts first. */
  take(signal?: AbortSignal): Promise<void> {
    const turn = this.queue.then(() => this.slot(signal));
    this.queue = turn.catch(() => undefined);
    return turn;
  }

  /** The REST option `makeRequest`: globally counted requests wait for their slot, then go out as discord.js sends them. */
  makeRequest(
    inner: RESTOptions['makeRequest'] = DefaultRestOptions.makeRequest,
  ): RESTOptions['makeRequest'] {
    return async (url, init) => {
      if (!NOT_GLOBAL.test(new URL(url).pathname)) await this.take(init.signal ?? undefined);
      return inner(url, init);
    };
  }

  private async slot(signal: AbortSignal | undefined): Promise<void> {
    for (;;) {
      if (signal?.aborted) throw signal.reason;
      const now = this.now();
      while (this.sent.length > 0 && this.sent[0]! <= now - this.spanMs) this.sent.shift();
      if (this.sent.length < this.limit) {
        this.sent.push(now);
        return;
      }
      await wait(this.sent[0]! + this.spanMs - now, signal);
    }
  }
}
