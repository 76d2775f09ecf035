import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Database } from 'better-sqlite3';

/** A migration file name: NNN_name.sql, applied in numeric order. */
const MIGRATION_FILE = /^(\d+)_([\w-]+)\.sql$/;

/**
 * Applies every numbered migration not yet recorded in schema_migrations, each in its own transaction together
 * with its record, so a crash mid-migration leaves the database at the previous version. Safe to re-run.
 * Returns the versions applied now.
 */
export function migrate(db: Database, dir: string): number[] {
  db.exec(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)`);
  const applied = new Set(
    db
      .prepare('SELECT version FROM schema_migrations')
      .all()
      .map((r) => (r as { version: number }).version),
  );
  const files = readdirSync(dir)
    .map((f) => MIGRATION_FILE.exec(f))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ version: Number(m[1]), name: m[2]!, file: join(dir, m[0]) }))
    .sort((a, b) => a.version - b.version);
  const seen = new Set<number>();
  for (const f of files) {
    if (seen.has(f.version)) throw new Error(`two migrations share version ${f.version} in ${dir}`);
    seen.add(f.version);
  }
  const record = db.prepare('INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)');
  const done: number[] = [];
  for (const f of files) {
    if (applied.has(f.version)) continue;
    const sql = readFileSync(f.file, 'utf8');
    db.transaction(() => {
      db.exec(sql);
      record.run(f.version, f.name, Date.now());
    })();
    done.push(f.version);
  }
  return done;
}
