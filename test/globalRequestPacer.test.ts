import { DiscordEmulator } from '@threadwarden/discord-emulator';
import { DefaultRestOptions, REST, type RESTOptions, Routes } from 'discord.js';
import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GlobalRequestPacer } from '../src/discord/GlobalRequestPacer.js';
import { waitFor } from './helpers/wait.js';

describe('GlobalRequestPacer (fake clock)', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('whatever the latencies, no window of arrivals holds more than `limit`; every request goes, in the order asked (fast-check)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 8 }),
        fc.integer({ min: 1, max: 2000 }),
        // Per request: the gap before it is asked for, how long it takes to be answered, and where in between
        // Discord counts it (percent of the way from send to answer).
        fc.array(
          fc.record({
            gap: fc.integer({ min: 0, max: 700 }),
            takes: fc.integer({ min: 0, max: 1500 }),
            counted: fc.integer({ min: 0, max: 100 }),
          }),
          { minLength: 1, maxLength: 60 },
        ),
        async (limit, windowMs, requests) => {
          const pacer = new GlobalRequestPacer({ limit, windowMs });
          const t0 = Date.now();
          const grants: number[] = [];
          const arrivals: number[] = [];
          let at = 0;
          requests.forEach((r, i) => {
            at += r.gap;
            setTimeout(() => {
              void pacer.take().then((answered) => {
                grants[i] = Date.now() - t0;
                arrivals[i] = grants[i]! + (r.takes * r.counted) / 100;
                setTimeout(answered, r.takes);
              });
            }, at);
          });
          await vi.runAllTimersAsync();
          expect(grants.filter((g) => g !== undefined)).toHaveLength(requests.length);
          for (let i = 1; i < grants.length; i++) expect(grants[i]!).toBeGreaterThanOrEqual(grants[i - 1]!);
          for (const a of arrivals) {
            const inWindow = arrivals.filter((b) => b >= a && b < a + windowMs).length;
            expect(inWindow).toBeLessThanOrEqual(limit);
          }
        },
      ),
    );
  });

  it('answered at once, `limit` requests go per window and no more: the next one waits for the oldest answer to age out', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const pacer = new GlobalRequestPacer({ limit: 3, windowMs: 1000 });
    const t0 = Date.now();
    const grants: number[] = [];
    for (let i = 0; i < 7; i++)
      void pacer.take().then((answered) => {
        grants.push(Date.now() - t0);
        answered();
      });
    await vi.runAllTimersAsync();
    expect(grants).toEqual([0, 0, 0, 1000, 1000, 1000, 2000]);
  });

  it('a request in flight holds its slot however long it takes', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const pacer = new GlobalRequestPacer({ limit: 1, windowMs: 1000 });
    const t0 = Date.now();
    const first = await pacer.take();
    let second: number | undefined;
    void pacer.take().then(() => {
      second = Date.now() - t0;
    });
    await vi.advanceTimersByTimeAsync(5000);
    expect(second).toBeUndefined();
    first();
    await vi.advanceTimersByTimeAsync(999);
    expect(second).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(second).toBe(6000);
  });

  it('a request whose signal aborts while it waits is refused and gives its slot to the next one', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const pacer = new GlobalRequestPacer({ limit: 1, windowMs: 1000 });
    const t0 = Date.now();
    (await pacer.take())();
    const abort = new AbortController();
    const second = pacer.take(abort.signal);
    let third: number | undefined;
    void pacer.take().then(() => {
      third = Date.now() - t0;
    });
    abort.abort(new Error('timed out'));
    await expect(second).rejects.toThrow('timed out');
    await vi.advanceTimersByTimeAsync(999);
    expect(third).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(third).toBe(1000);
  });

  it('interaction callbacks and webhooks are not paced; every other route is', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const sent: string[] = [];
    const inner: RESTOptions['makeRequest'] = async (url) => {
      sent.push(new URL(url).pathname);
      return new Response(null, { status: 204 });
    };
    const request = new GlobalRequestPacer({ limit: 1, windowMs: 1000 }).makeRequest(inner);
    const base = 'http://127.0.0.1:1/api/v10';
    const init = { method: 'POST' };
    void request(`${base}/channels/1/messages`, init);
    void request(`${base}/channels/2/messages`, init);
    void request(`${base}/interactions/3/tok-en/callback`, init);
    void request(`${base}/webhooks/4/tok-en/messages/@original`, init);
    await vi.advanceTimersByTimeAsync(0);
    expect([...sent].sort()).toEqual([
      '/api/v10/channels/1/messages',
      '/api/v10/interactions/3/tok-en/callback',
      '/api/v10/webhooks/4/tok-en/messages/@original',
    ]);
    await vi.advanceTimersByTimeAsync(1000);
    expect(sent.at(-1)).toBe('/api/v10/channels/2/messages');
  });

  it('refuses a limit below 1 or a span that is not positive, naming the option', () => {
    expect(() => new GlobalRequestPacer({ limit: 0 })).toThrow(/limit must be an integer >= 1, got 0/);
    expect(() => new GlobalRequestPacer({ windowMs: 0 })).toThrow(/windowMs must be > 0, got 0/);
  });
});

/**
 * Why the pacer exists, with the real discord.js REST client and the emulator's global window (50 per second,
 * opened by the first request to arrive): batch A (40 requests) takes 500 ms to arrive, batch B (40) is sent as
 * soon as discord.js's own window has closed and arrives at once. discord.js's fixed window sends B at once, and
 * both batches land in one emulator window. The pacer (45 in flight or answered within a second, whatever the
 * latency) holds B back.
 */
describe('discord.js REST against the emulator, a burst across discord.js global window', () => {
  let emu: DiscordEmulator | undefined;

  afterEach(async () => {
    await emu?.stop();
    emu = undefined;
  });

  async function burstAcrossTheWindow(paced: boolean): Promise<DiscordEmulator> {
    emu = new DiscordEmulator();
    await emu.start();
    const channels = Array.from({ length: 40 }, (_, i) => emu!.createTextChannel(`c${i}`));
    let latencyMs = 500;
    const slow: RESTOptions['makeRequest'] = async (url, init) => {
      const ms = latencyMs;
      if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
      return DefaultRestOptions.makeRequest(url, init);
    };
    const rest = new REST({
      api: emu.apiBase,
      // Paced: discord.js's own limit out of the way, the pacer alone decides.
      globalRequestsPerSecond: paced ? 1000 : 40,
      makeRequest: paced ? new GlobalRequestPacer({ limit: 45 }).makeRequest(slow) : slow,
    }).setToken(emu.botToken);
    await Promise.all(channels.map((id) => rest.get(Routes.channel(id))));
    // Opened by batch A's first send; the emulator's opened at its first arrival, 500 ms later.
    const windowEnd = rest.globalReset;
    await waitFor(() => Date.now() > windowEnd, "discord.js's global window to close", 5000, 1);
    latencyMs = 0;
    await Promise.all(channels.map((id) => rest.get(Routes.channel(id))));
    return emu;
  }

  it('discord.js alone: both batches reach one emulator window and draw global 429s (the cause)', async () => {
    const e = await burstAcrossTheWindow(false);
    const limited = e.rateLimited();
    expect(limited.length).toBeGreaterThanOrEqual(30);
    expect(limited.every((r) => (r.response as { global?: boolean }).global === true)).toBe(true);
  });

  it('paced: the same burst draws no 429', async () => {
    const e = await burstAcrossTheWindow(true);
    expect(e.rateLimited()).toEqual([]);
    expect(e.requestLog.filter((r) => r.route === 'GET /channels/:id')).toHaveLength(80);
  });
});
