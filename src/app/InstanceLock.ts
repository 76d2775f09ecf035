import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import type { Logger } from '../log/logger.js';
import { selfIdentity } from '../process/marker.js';
import { isAlive } from '../process/procfs.js';

interface LockContent {
  readonly pid: number;
  readonly startTime: number;
  readonly startedAt: string;
  readonly host: string;
}

/** Another live instance holds the lock; `pid` says which. */
export class InstanceLockedError extends Error {
  readonly code = 'INSTANCE_LOCKED';
  readonly pid: number;
  readonly path: string;
  constructor(path: string, holder: LockContent) {
    super(
      `another threadwarden (pid ${holder.pid}, started ${holder.startedAt}) is running on this database (${path}). ` +
        `Stop it first (kill -TERM ${holder.pid}, or docker compose stop), or point DATABASE_PATH elsewhere.`,
    );
    this.pid = holder.pid;
    this.path = path;
  }
}

/**
 * One bot per database: a lock file beside it holding the owner's pid and start time, created atomically.
 * A lock whose owner is dead, or whose pid now belongs to another process (other start time), is stale and
 * replaced with a warning.
 */
export class InstanceLock {
  readonly path: string;
  private held = false;

  private constructor(path: string) {
    this.path = path;
  }

  static acquire(databasePath: string, logger: Logger): InstanceLock {
    const path = `${databasePath}.lock`;
    mkdirSync(dirname(path), { recursive: true });
    const me = selfIdentity();
    const content: LockContent = {
      pid: me.pid,
      startTime: me.startTime,
      startedAt: new Date().toISOString(),
      host: hostname(),
    };
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        const fd = openSync(path, 'wx', 0o644);
        writeSync(fd, JSON.stringify(content));
        closeSync(fd);
        const lock = new InstanceLock(path);
        lock.held = true;
        return lock;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
      const holder = InstanceLock.read(path);
      if (holder && isAlive(holder.pid, holder.startTime)) throw new InstanceLockedError(path, holder);
      logger.warn({ path, holder }, 'removing a stale lock left by an instance that is no longer running');
      rmSync(path, { force: true });
    }
    throw new Error(`could not take the lock ${path}`);
  }

  private static read(path: string): LockContent | undefined {
    try {
      const parsed = JSON.parse(readFileSync(path, 'utf8')) as Partial<LockContent>;
      if (typeof parsed.pid === 'number' && typeof parsed.startTime === 'number')
        return parsed as LockContent;
    } catch {
      // unreadable or half-written: stale
    }
    return undefined;
  }

  /** Removes the lock if it is still ours. Idempotent. */
  release(): void {
    if (!this.held) return;
    this.held = false;
    const holder = InstanceLock.read(this.path);
    if (holder?.pid === process.pid) rmSync(this.path, { force: true });
  }
}
