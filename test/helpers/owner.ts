import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { waitFor } from './wait.js';

/**
 * Runs test/fixtures/owner.mjs (a bot stand-in that opens `sessions` hostile sessions with a database at `db`),
 * waits until they are up, then SIGKILLs it. Returns every pid its sessions had; many survive as orphans.
 */
export async function killedOwnerPids(db: string, workspaces: string, sessions: number): Promise<number[]> {
  const owner = spawn(process.execPath, [join(import.meta.dirname, '../fixtures/owner.mjs')], {
    env: { ...process.env, OWNER_DB: db, OWNER_WORKSPACES: workspaces, OWNER_SESSIONS: String(sessions) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  owner.stdout.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const pids = await waitFor(
    () => /READY ([\d ]+)\n/.exec(out)?.[1],
    'the owner to start its sessions',
    30_000,
  );
  owner.kill('SIGKILL');
  await new Promise((r) => owner.once('exit', r));
  return pids.trim().split(' ').map(Number);
}
