import { execFile } from 'node:child_process';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { END_REASONS } from '../src/endReasons.js';
import { findBwrap } from '../src/process/sandbox/probeSandbox.js';
import { BotHarness } from './helpers/botHarness.js';
import { waitFor } from './helpers/wait.js';

let h: BotHarness | undefined;
afterEach(async () => {
  await h?.disposeChecked();
  h = undefined;
});

const url = (path: string) => `http://${h!.app.httpAddress!.host}:${h!.app.httpAddress!.port}${path}`;

describe('/health and /metrics', () => {
  it('/health has the documented shape, lists the session with its pid, and binds to loopback', async () => {
    h = await BotHarness.start();
    expect(h.app.httpAddress?.host).toBe('127.0.0.1');
    const threadId = await h.mention(h.alice, 'hello');
    await h.botMessages(threadId, 0);
    await h.app.monitor.tick();
    const res = await fetch(url('/health'));
    expect(res.status).toBe(200);
    const body = (await res.json()) as Record<string, unknown>;
    // AGENT_SANDBOX=auto: bwrap where it works; where not, "off" and the reason.
    const sandboxed = findBwrap() !== undefined;
    expect(Object.keys(body).sort()).toEqual(
      [
        'available',
        'busy',
        'limits',
        'poolSize',
        'sandbox',
        ...(sandboxed ? [] : ['sandboxWarning']),
        'sessions',
        'status',
        'stuck',
        'uptime',
      ].sort(),
    );
    expect(body.sandbox).toBe(sandboxed ? 'bwrap' : 'off');
    expect(body).toMatchObject({
      status: 'ok',
      poolSize: 1,
      available: 9,
      busy: 0,
      stuck: 0,
      limits: { maxCpu: 90, maxMemoryMB: 1500, maxStuckTimeMs: 120000 },
    });
    expect(typeof body.uptime).toBe('number');
    const [s] = body.sessions as Record<string, unknown>[];
    expect(Object.keys(s!).sort()).toEqual([
      'cpu',
      'memMB',
      'pid',
      'sessionId',
      'state',
      'threadId',
      'uptime',
    ]);
    expect(s).toMatchObject({ threadId, pid: h.app.pool.get(threadId)!.pid, state: 'idle' });
    expect(s!.memMB).toBeGreaterThan(10);
    expect(JSON.stringify(body)).not.toContain('test-token');
    expect(JSON.stringify(body)).not.toContain('hello');
    const metrics = await (await fetch(url('/metrics'))).text();
    expect(metrics).toMatch(
      new RegExp(`threadwarden_session_memory_bytes\\{thread_id="${threadId}"\\} \\d{7,}`),
    );
    expect(metrics).toContain(`threadwarden_session_cpu_percent{thread_id="${threadId}"}`);
  });

  it('/health is 503 with the reason when the gateway is down or the database refuses writes', async () => {
    h = await BotHarness.start();
    expect((await fetch(url('/health'))).status).toBe(200);
    const db = (h.app.store as unknown as { db: Database.Database }).db;
    db.pragma('query_only = ON');
    const bad = await fetch(url('/health'));
    expect(bad.status).toBe(503);
    expect(((await bad.json()) as { reason: string }).reason).toMatch(/database not writable/);
    db.pragma('query_only = OFF');
    expect((await fetch(url('/health'))).status).toBe(200);
    await h.app.bridge.client.destroy();
    const down = await fetch(url('/health'));
    expect(down.status).toBe(503);
    expect(((await down.json()) as { reason: string }).reason).toMatch(/gateway not connected/);
  });

  it('/metrics is Prometheus text with the end-reason counter, histograms and no secrets', async () => {
    h = await BotHarness.start();
    const threadId = await h.mention(h.alice, 'secret plans');
    await h.botMessages(threadId, 0);
    await h.app.pool.close(threadId, 'archived');
    const res = await fetch(url('/metrics'));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    for (const reason of END_REASONS)
      expect(text).toContain(`threadwarden_sessions_ended_total{reason="${reason}"}`);
    expect(text).toContain('threadwarden_sessions_ended_total{reason="archived"} 1');
    expect(text).toMatch(/threadwarden_spawn_seconds_count 1/);
    expect(text).toMatch(/threadwarden_turn_seconds_count 1/);
    expect(text).toMatch(/threadwarden_teardown_seconds_count 1/);
    expect(text).toContain('threadwarden_sessions{state="idle"}');
    expect(text).toContain('threadwarden_processes_reaped_total');
    expect(text).toContain('threadwarden_discord_rate_limited_total');
    expect(text).toContain('threadwarden_process_nodejs_eventloop_lag_seconds');
    expect(text).not.toContain('test-token');
    expect(text).not.toContain('secret plans');
    expect((await fetch(url('/nope'))).status).toBe(404);
    expect((await fetch(url('/health'), { method: 'POST' })).status).toBe(405);
  });

  it('threadwarden status: exit 0 healthy with a table, 1 unhealthy, 2 when nothing listens', async () => {
    h = await BotHarness.start();
    const threadId = await h.mention(h.alice, 'hi');
    await h.botMessages(threadId, 0);
    // Asynchronously: the server under test lives in this process and must keep answering.
    const run = (port: number) =>
      new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
        execFile(
          process.execPath,
          [join(import.meta.dirname, '../dist/src/cli.js'), 'status'],
          { env: { PATH: process.env.PATH, HTTP_PORT: String(port) }, timeout: 20_000 },
          (err, stdout, stderr) => resolve({ status: err ? (err.code as number) : 0, stdout, stderr }),
        );
      });
    const ok = await run(h.app.httpAddress!.port);
    expect(ok.status).toBe(0);
    expect(ok.stdout).toContain('status: ok');
    expect(ok.stdout).toContain(threadId);
    await h.app.bridge.client.destroy();
    await waitFor(() => !h!.app.bridge.connected, 'the gateway to be down');
    const bad = await run(h.app.httpAddress!.port);
    expect(bad.status).toBe(1);
    expect(bad.stdout).toContain('gateway not connected');
    const port = h.app.httpAddress!.port;
    await h.app.http.close();
    const none = await run(port);
    expect(none.status).toBe(2);
    expect(none.stderr).toContain('not running');
  });
});
