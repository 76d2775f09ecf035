/** A fixed-window limit: `limit` requests per `windowMs`. */
export interface Limit {
  readonly limit: number;
  readonly windowMs: number;
}

export interface RateDecision {
  readonly allowed: boolean;
  readonly limit: number;
  readonly remaining: number;
  /** Seconds until the window resets, with millisecond precision, as Discord sends it. */
  readonly resetAfter: number;
  /** Unix time (s) of the reset. */
  readonly reset: number;
}

/** Fixed-window counters per bucket key, as Discord's per-route buckets behave closely enough for a client. */
export class RateLimiter {
  private readonly windows = new Map<string, { start: number; count: number }>();

  take(key: string, limit: Limit, now = Date.now()): RateDecision {
    let w = this.windows.get(key);
    if (!w || now >= w.start + limit.windowMs) {
      w = { start: now, count: 0 };
      this.windows.set(key, w);
    }
    const resetAt = w.start + limit.windowMs;
    const allowed = w.count < limit.limit;
    if (allowed) w.count++;
    return {
      allowed,
      limit: limit.limit,
      remaining: Math.max(0, limit.limit - w.count),
      resetAfter: Math.max(0, resetAt - now) / 1000,
      reset: resetAt / 1000,
    };
  }
}
