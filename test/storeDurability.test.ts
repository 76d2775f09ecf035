import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/log/logger.js';
import { MAX_LAST_OUTPUT_CHARS, type NewSession, type SessionEnd, Store } from '../src/store/Store.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tw-store-d-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const DAY = 86_400_000;
const session = (id: string, startedAt = Date.now()): NewSession => ({
  id,
  threadId: '123456789012345678',
  channelId: undefined,
  userId: undefined,
  instanceId: 'inst',
  marker: `tw1:1:1:inst:${id}`,
  cwd: '/tmp/w',
  command: ['kiro-cli'],
  startedAt,
});
const ended = (endedAt: number, lastOutput?: string): SessionEnd => ({
  reason: 'reset',
  endedAt,
  exitCode: 0,
  exitSignal: undefined,
  killSignal: 'SIGTERM',
  forced: false,
  pidsKilled: [],
  teardownMs: 1,
  lastOutput,
});
const dbOf = (store: Store) => (store as unknown as { db: Database.Database }).db;
const nextTurn = () => new Promise((r) => setImmediate(r));

describe('Store replay never stalls', () => {
  it('skips and reports a write that can never succeed (a foreign key to no session); the writes behind it land', async () => {
    const store = new Store(join(dir, 'tw.db'), { logger: silentLogger() });
    store.insertSession(session('a'));
    store.recordEvent('ghost', 'turn_start'); // no such session: the foreign key fails on every try
    store.insertSession(session('b'));
    store.endSession('b', ended(Date.now()));
    await nextTurn();
    expect(store.pendingWrites).toBe(0);
    expect(store.health()).toEqual({ ok: true });
    expect(
      store
        .history()
        .map((r) => r.id)
        .sort(),
    ).toEqual(['a', 'b']);
    expect(store.history().find((r) => r.id === 'b')?.endReason).toBe('reset');
    expect(store.writeLosses).toEqual({ dropped: 0, rejected: 1 });
    store.close();
  });

  it('a queue that overflowed while the disk refused writes drops events, never the session row they need', () => {
    const store = new Store(join(dir, 'tw.db'), { logger: silentLogger() });
    dbOf(store).pragma('query_only = ON'); // refuses every write, as a read-only file or a full disk does
    store.insertSession(session('s1'));
    for (let i = 0; i < 10_000; i++) store.recordEvent('s1', 'activity', { i });
    store.endSession('s1', ended(Date.now()));
    expect(store.health().ok).toBe(false);
    dbOf(store).pragma('query_only = OFF');
    expect(store.health()).toEqual({ ok: true });
    expect(store.pendingWrites).toBe(0);
    expect(store.history()[0]).toMatchObject({ id: 's1', endReason: 'reset' });
    const events = store.events('s1');
    // 10,002 writes into a queue of 10,000: the two oldest events went.
    expect(events).toHaveLength(9_998);
    expect(events[0]!.detail).toEqual({ i: 2 });
    expect(store.writeLosses).toEqual({ dropped: 2, rejected: 0 });
    store.close();
  });
});

describe('Store writes stay out of the data path', () => {
  it('a burst of writes returns before anything is committed, and is committed in one transaction', async () => {
    const path = join(dir, 'tw.db');
    const store = new Store(path, { logger: silentLogger() });
    store.insertSession(session('s1'));
    await nextTurn();
    const other = new Database(path, { readonly: true });
    const count = () => (other.prepare('SELECT COUNT(*) AS n FROM events').get() as { n: number }).n;
    const commits = store.commits;
    for (let i = 0; i < 1000; i++) store.recordEvent('s1', 'activity', { i });
    expect(count()).toBe(0); // nothing written in the caller's stack
    await nextTurn();
    expect(count()).toBe(1000);
    expect(store.commits - commits).toBe(1);
    other.close();
    store.close();
  });

  it('reads see the writes still queued', () => {
    const store = new Store(join(dir, 'tw.db'), { logger: silentLogger() });
    store.insertSession(session('s1'));
    store.recordEvent('s1', 'turn_start');
    expect(store.openSessions().map((r) => r.id)).toEqual(['s1']);
    expect(store.events('s1').map((e) => e.kind)).toEqual(['turn_start']);
    store.close();
  });
});

describe('Store retention', () => {
  it('deletes ended sessions and events older than the retention age, keeps the rest and every open session', () => {
    const path = join(dir, 'tw.db');
    let now = 1_000 * DAY;
    const first = new Store(path, { logger: silentLogger(), now: () => now });
    first.insertSession(session('old', now - 200 * DAY));
    first.recordEvent('old', 'spawn', undefined, now - 200 * DAY);
    first.endSession('old', ended(now - 95 * DAY));
    first.insertSession(session('recent', now - 10 * DAY));
    first.recordEvent('recent', 'spawn', undefined, now - 10 * DAY);
    first.endSession('recent', ended(now - 9 * DAY));
    first.insertSession(session('open', now - 300 * DAY)); // still running: its row stays
    first.recordEvent('open', 'spawn', undefined, now - 300 * DAY);
    first.recordEvent('open', 'turn_start', undefined, now - DAY);
    expect(first.prune()).toEqual({ sessions: 1, events: 2 });
    expect(
      first
        .history()
        .map((r) => r.id)
        .sort(),
    ).toEqual(['open', 'recent']);
    expect(first.events('open').map((e) => e.kind)).toEqual(['turn_start']);
    expect(first.events('recent')).toHaveLength(1);
    first.close();
    // A shorter retention, applied when the store opens.
    now += DAY;
    const second = new Store(path, { logger: silentLogger(), now: () => now, retentionMs: 5 * DAY });
    expect(second.history().map((r) => r.id)).toEqual(['open']);
    second.close();
  });

  it(`keeps only the last ${MAX_LAST_OUTPUT_CHARS} characters of a session's last output`, () => {
    const store = new Store(join(dir, 'tw.db'), { logger: silentLogger() });
    store.insertSession(session('s1'));
    store.endSession('s1', ended(Date.now(), `${'x'.repeat(1_000_000)}the end`));
    const row = store.history()[0]!;
    expect(row.lastOutput).toHaveLength(MAX_LAST_OUTPUT_CHARS);
    expect(row.lastOutput!.endsWith('the end')).toBe(true);
    store.close();
  });
});
