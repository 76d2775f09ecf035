import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InstanceLock, InstanceLockedError } from '../src/app/InstanceLock.js';
import { silentLogger } from '../src/log/logger.js';
import { readProc, scanProcesses } from '../src/process/procfs.js';
import { expectAllGone, identify, killAll, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tw-lock-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('InstanceLock', () => {
  it('refuses a second holder while the first lives, naming its pid and how to stop it', () => {
    const db = join(dir, 'tw.db');
    // The holder: this test process itself, as another instance would see it.
    const first = InstanceLock.acquire(db, silentLogger());
    const err = (() => {
      try {
        InstanceLock.acquire(db, silentLogger());
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(InstanceLockedError);
    expect((err as Error).message).toContain(`pid ${process.pid}`);
    expect((err as Error).message).toContain(`kill -TERM ${process.pid}`);
    first.release();
    first.release();
    expect(existsSync(`${db}.lock`)).toBe(false);
  });

  it('clears a stale lock whose pid is dead', () => {
    const db = join(dir, 'tw.db');
    const dead = spawnSync('true').pid;
    writeFileSync(`${db}.lock`, JSON.stringify({ pid: dead, startTime: 1, startedAt: 'then', host: 'h' }));
    const lock = InstanceLock.acquire(db, silentLogger());
    expect(JSON.parse(readFileSync(`${db}.lock`, 'utf8')).pid).toBe(process.pid);
    lock.release();
  });

  it('clears a stale lock whose pid now belongs to another process', () => {
    const db = join(dir, 'tw.db');
    const me = readProc(process.pid)!;
    writeFileSync(
      `${db}.lock`,
      JSON.stringify({ pid: process.pid, startTime: me.startTime - 1, startedAt: 'x', host: 'h' }),
    );
    const lock = InstanceLock.acquire(db, silentLogger());
    lock.release();
    expect(existsSync(`${db}.lock`)).toBe(false);
  });

  it('release leaves a lock that is no longer ours alone', () => {
    const db = join(dir, 'tw.db');
    const lock = InstanceLock.acquire(db, silentLogger());
    writeFileSync(`${db}.lock`, JSON.stringify({ pid: 1, startTime: 1, startedAt: 'x', host: 'h' }));
    lock.release();
    expect(existsSync(`${db}.lock`)).toBe(true);
  });

  it('a second `threadwarden start` on the same database exits 1 and names the running pid', () => {
    const db = join(dir, 'tw.db');
    const lock = InstanceLock.acquire(db, silentLogger());
    const r = spawnSync(process.execPath, [join(import.meta.dirname, '../dist/src/cli.js'), 'start'], {
      env: {
        PATH: process.env.PATH,
        DISCORD_TOKEN: 't',
        ALLOW_ALL_USERS: 'true',
        DATABASE_PATH: db,
        HTTP_PORT: '0',
      },
      encoding: 'utf8',
      timeout: 20_000,
    });
    lock.release();
    expect(r.status).toBe(1);
    expect(r.stderr).toContain(`another threadwarden (pid ${process.pid}`);
  });

  describe('two bots on one database in two PID namespaces', () => {
    const started: Pid[] = [];
    afterEach(async () => {
      await killAll(started);
      started.length = 0;
    });

    /** The lock holder fixture as pid 1 of a fresh PID namespace with its own /proc, like a container. */
    function inNamespace(db: string): { child: ChildProcess; out: () => string } {
      const fixture = join(import.meta.dirname, 'fixtures/lockHolder.mjs');
      const args = ['--pid', '--fork', '--mount-proc', '--kill-child', process.execPath, fixture, db];
      const child = spawn('unshare', args, { stdio: ['pipe', 'pipe', 'inherit'] });
      let out = '';
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
      });
      return { child, out: () => out };
    }

    const exited = (c: ChildProcess) =>
      new Promise<number | null>((r) => {
        if (c.exitCode !== null || c.signalCode !== null) r(c.exitCode);
        else c.once('exit', (code) => r(code));
      });

    it.skipIf(process.getuid?.() !== 0)(
      'the second is refused while the first lives, though its pid means nothing there; the lock frees when the first dies',
      async () => {
        const db = join(dir, 'tw.db');
        const a = inNamespace(db);
        started.push(...identify([a.child.pid!]));
        await waitFor(() => /LOCKED (\d+)/.exec(a.out()), 'the first bot to take the lock', 20_000);
        // Pid 1 in its own namespace: another namespace cannot judge it by its pid.
        expect(a.out()).toContain('LOCKED 1\n');
        const aTree = identify([
          a.child.pid!,
          ...scanProcesses()
            .filter((p) => p.ppid === a.child.pid)
            .map((p) => p.pid),
        ]);
        expect(aTree.length).toBe(2);
        started.push(...aTree);

        const b = inNamespace(db);
        started.push(...identify([b.child.pid!]));
        // Either answer ends the wait: a second bot that took the lock fails here, it does not hang the test.
        await waitFor(() => /^(LOCKED|REFUSED)/m.test(b.out()), 'the second bot to try the lock', 20_000);
        if (b.out().startsWith('LOCKED')) b.child.stdin!.end();
        expect(b.out()).toMatch(/^REFUSED another threadwarden \(pid 1, started /);
        expect(await exited(b.child)).toBe(3);

        a.child.kill('SIGKILL'); // a crash: no release, the record stays behind
        await expectAllGone(aTree);
        expect(JSON.parse(readFileSync(`${db}.lock`, 'utf8')).pid).toBe(1);

        const c = inNamespace(db);
        started.push(...identify([c.child.pid!]));
        await waitFor(() => c.out().includes('LOCKED'), 'a new bot to take the freed lock', 20_000);
        c.child.stdin!.end();
        expect(await exited(c.child)).toBe(0);
        expect(existsSync(`${db}.lock`)).toBe(false);
      },
      90_000,
    );
  });
});
