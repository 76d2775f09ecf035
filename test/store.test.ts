import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { silentLogger } from '../src/log/logger.js';
import { migrate } from '../src/store/migrate.js';
import { type NewSession, Store } from '../src/store/Store.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tw-store-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const session = (id: string, threadId = '123456789012345678'): NewSession => ({
  id,
  threadId,
  channelId: '223456789012345678',
  userId: '323456789012345678',
  instanceId: 'inst',
  marker: `tw1:1:1:inst:${id}`,
  cwd: '/tmp/w',
  command: ['kiro-cli', 'chat'],
  startedAt: Date.now(),
});

const end = {
  endedAt: Date.now(),
  exitCode: 0,
  exitSignal: undefined,
  killSignal: 'SIGTERM',
  forced: false,
  pidsKilled: [1, 2],
  teardownMs: 12.5,
  lastOutput: 'bye',
} as const;

/** Every migration version shipped in migrations/, in order (other issues add theirs). */
const SHIPPED = readdirSync(join(import.meta.dirname, '../migrations'))
  .map((f) => /^(\d+)_/.exec(f)?.[1])
  .filter((v): v is string => v !== undefined)
  .map(Number)
  .sort((a, b) => a - b);

describe('Store', () => {
  it('creates the directory, uses WAL and applies migrations once', () => {
    const path = join(dir, 'nested', 'tw.db');
    new Store(path, { logger: silentLogger() }).close();
    const db = new Database(path);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.prepare('SELECT version FROM schema_migrations ORDER BY version').all()).toEqual(
      SHIPPED.map((version) => ({ version })),
    );
    expect(migrate(db, join(import.meta.dirname, '../migrations'))).toEqual([]);
    db.close();
  });

  it('applies a new numbered migration in order and rolls back a broken one whole', () => {
    const migrations = join(dir, 'migrations');
    cpSync(join(import.meta.dirname, '../migrations'), migrations, { recursive: true });
    const db = new Database(join(dir, 'm.db'));
    expect(migrate(db, migrations)).toEqual(SHIPPED);
    writeFileSync(join(migrations, '100_extra.sql'), 'CREATE TABLE extra (x INTEGER);');
    writeFileSync(
      join(migrations, '101_broken.sql'),
      'CREATE TABLE half (x INTEGER); SELECT * FROM nowhere;',
    );
    expect(() => migrate(db, migrations)).toThrow(/no such table: nowhere/);
    const versions = db.prepare('SELECT version FROM schema_migrations ORDER BY version').all();
    expect(versions).toEqual([...SHIPPED, 100].map((version) => ({ version })));
    expect(db.prepare("SELECT name FROM sqlite_master WHERE name = 'half'").all()).toEqual([]);
    db.close();
  });

  it('records a session, its events and its end, and the history survives a reopen', () => {
    const path = join(dir, 'tw.db');
    const store = new Store(path, { logger: silentLogger() });
    store.insertSession(session('s1'));
    store.markSpawned('s1', 4242, 99);
    store.recordEvent('s1', 'ready', { ms: 80 });
    store.countTurn('s1');
    store.recordPeaks('s1', 50, 100);
    store.recordPeaks('s1', 20, 300);
    store.endSession('s1', { ...end, reason: 'archived' });
    store.endSession('s1', { ...end, reason: 'crashed' }); // a second end never overwrites the first
    store.insertSession(session('s2', '999999999999999999'));
    store.close();

    const again = new Store(path, { logger: silentLogger() });
    const [row] = again.history({ threadId: '123456789012345678' });
    expect(row).toMatchObject({
      id: 's1',
      pid: 4242,
      endReason: 'archived',
      forced: 0,
      pidsKilled: '[1,2]',
      teardownMs: 12.5,
      peakCpu: 50,
      peakMemMb: 300,
      turns: 1,
    });
    expect(again.events('s1')).toEqual([
      expect.objectContaining({ kind: 'spawn', detail: null }),
      expect.objectContaining({ kind: 'ready', detail: { ms: 80 } }),
    ]);
    expect(again.openSessions().map((r) => r.id)).toEqual(['s2']);
    expect(again.countsByReason()).toEqual({ archived: 1 });
    expect(again.history({ reason: 'archived' }).map((r) => r.id)).toEqual(['s1']);
    again.close();
  });

  it('keeps writes that fail while the database refuses them and replays them in order', () => {
    const store = new Store(join(dir, 'tw.db'), { logger: silentLogger() });
    const db = (store as unknown as { db: Database.Database }).db;
    db.pragma('query_only = ON'); // the database now refuses every write, as a read-only file does
    store.insertSession(session('s1'));
    store.endSession('s1', { ...end, reason: 'reset' });
    expect(store.pendingWrites).toBe(2);
    expect(store.health()).toEqual({ ok: false, error: expect.stringContaining('readonly') });
    db.pragma('query_only = OFF');
    expect(store.health()).toEqual({ ok: true });
    expect(store.pendingWrites).toBe(0);
    expect(store.history()[0]).toMatchObject({ id: 's1', endReason: 'reset' });
    store.close();
  });
});

describe('Store: isolation', () => {
  it('records which isolation a session ran under with its pid, in the same write', () => {
    const d = mkdtempSync(join(tmpdir(), 'tw-iso-'));
    try {
      const store = new Store(join(d, 'tw.db'), { logger: silentLogger() });
      store.insertSession(session('boxed'));
      store.insertSession(session('bare'));
      store.markSpawned('boxed', 4242, 99, undefined, Date.now(), 'bwrap');
      store.markSpawned('bare', 4343, 98, undefined, Date.now(), 'off');
      const rows = new Map(store.history().map((r) => [r.id, r]));
      expect(rows.get('boxed')).toMatchObject({ pid: 4242, isolation: 'bwrap' });
      expect(rows.get('bare')).toMatchObject({ pid: 4343, isolation: 'off' });
      store.close();
    } finally {
      rmSync(d, { recursive: true, force: true });
    }
  });
});
