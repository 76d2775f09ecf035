import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import Database from 'better-sqlite3';
import type { Logger } from '../log/logger.js';
import { selfIdentity } from '../process/marker.js';
import { isAlive } from '../process/procfs.js';

interface LockContent {
  readonly pid: number;
  readonly startTime: number;
  readonly startedAt: string;
  readonly host: string;
}

/** Named when the kernel lock is held but the record beside it is missing or unreadable. */
const UNKNOWN_HOLDER: LockContent = { pid: 0, startTime: 0, startedAt: 'unknown', host: 'unknown' };

/** Another live instance holds the lock; `pid` says which (as that instance sees itself). */
export class InstanceLockedError extends Error {
  readonly code = 'INSTANCE_LOCKED';
  readonly pid: number;
  readonly path: string;
  constructor(path: string, holder: LockContent) {
    super(
      `another threadwarden (pid ${holder.pid}, started ${holder.startedAt}, host ${holder.host}) is running on this database (${path}). ` +
        `Stop it first (kill -TERM ${holder.pid} on that host or in that container, or docker compose stop), or point DATABASE_PATH elsewhere.`,
    );
    this.pid = holder.pid;
    this.path = path;
  }
}

/**
 * One bot per database, enforced by the kernel: an exclusive SQLite lock (POSIX `fcntl`, which the kernel keeps
 * for every process on the host, whatever its PID namespace or container) on `<database>.instance-lock`, held in
 * an open transaction for the bot's whole life and dropped by the kernel when the process dies. Beside it,
 * `<database>.lock` records the holder's pid, start time, start date and host, only for messages and operators:
 * a pid from another PID namespace means nothing here, so the record never decides who holds the lock.
 */
export class InstanceLock {
  readonly path: string;
  readonly kernelLockPath: string;
  private held = false;
  private db: Database.Database | undefined;

  private constructor(path: string, kernelLockPath: string, db: Database.Database) {
    this.path = path;
    this.kernelLockPath = kernelLockPath;
    this.db = db;
  }

  static acquire(databasePath: string, logger: Logger): InstanceLock {
    const path = `${databasePath}.lock`;
    const kernelLockPath = `${databasePath}.instance-lock`;
    mkdirSync(dirname(path), { recursive: true });
    const db = new Database(kernelLockPath, { timeout: 0 });
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      // Takes SQLite's EXCLUSIVE lock on the file now and keeps it until release() or the process's death.
      db.exec('BEGIN EXCLUSIVE');
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') {
        throw new InstanceLockedError(path, InstanceLock.read(path) ?? UNKNOWN_HOLDER);
      }
      throw err;
    }
    const holder = InstanceLock.read(path);
    if (holder) {
      const note = isAlive(holder.pid, holder.startTime)
        ? 'its pid is alive here, but in another PID namespace or a reused pid: the kernel lock was free'
        : 'that instance is no longer running';
      logger.warn({ path, holder }, `replacing a stale lock record (${note})`);
    }
    const me = selfIdentity();
    const content: LockContent = {
      pid: me.pid,
      startTime: me.startTime,
      startedAt: new Date().toISOString(),
      host: hostname(),
    };
    // Written whole or not at all: a reader never sees half a record.
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify(content), { mode: 0o644 });
    renameSync(tmp, path);
    const lock = new InstanceLock(path, kernelLockPath, db);
    lock.held = true;
    return lock;
  }

  private static read(path: string): LockContent | undefined {
    try {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockContent>;
      if (typeof parsed.pid === 'number' && typeof parsed.startTime === 'number')
        return parsed as LockContent;
    } catch {
      // unreadable or absent: nothing to name
    }
    return undefined;
  }

  /** Drops the kernel lock and removes the record if it is still ours. Idempotent. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    const holder = InstanceLock.read(this.path);
    if (holder?.pid === process.pid) rmSync(this.path, { force: true });
    try {
      this.db?.exec('ROLLBACK');
    } finally {
      this.db?.close();
      this.db = undefined;
    }
  }
}
