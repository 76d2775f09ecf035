import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveExecutable } from '../../agent/resolveExecutable.js';
import { BwrapSandbox } from './BwrapSandbox.js';

export type ProbeResult =
  | { readonly ok: true; readonly bwrap: string; readonly ms: number }
  | { readonly ok: false; readonly reason: string };

/** Where bwrap is: the bot's PATH, else Debian's /usr/bin/bwrap. */
export function findBwrap(pathVar = process.env.PATH): string | undefined {
  return resolveExecutable('bwrap', pathVar) ?? resolveExecutable('/usr/bin/bwrap', undefined);
}

/**
 * One real sandboxed run with the view every agent gets: /bin/sh as pid 2 of a new PID namespace must not see the
 * bot's pid, a hidden file beside a workspace, or anything of the host's /tmp, and must write into its workspace.
 * Whatever fails is the reason (bwrap's own message when it could not create the namespaces).
 */
export async function probeSandbox(
  options: { bwrap?: string; timeoutMs?: number } = {},
): Promise<ProbeResult> {
  const bwrap = options.bwrap ?? findBwrap();
  if (!bwrap)
    return { ok: false, reason: 'bwrap was not found on PATH or at /usr/bin/bwrap (install bubblewrap)' };
  const started = performance.now();
  const dir = mkdtempSync(join(tmpdir(), 'tw-probe-'));
  try {
    const root = join(dir, 'workspaces');
    const workspace = join(root, 'probe');
    const secret = join(dir, 'secret.env');
    mkdirSync(workspace, { recursive: true });
    writeFileSync(secret, 'DISCORD_TOKEN=probe\n');
    const sandbox = new BwrapSandbox({ bwrap, workspaceRoot: root, hidden: [dir, secret] });
    const script = [
      'test "$$" = 2 || { echo "not pid 2 of its own PID namespace (pid $$)"; exit 10; }',
      `test ! -e /proc/${process.pid} || { echo "the bot's /proc/${process.pid} is visible"; exit 11; }`,
      `test ! -e '${secret}' || { echo "a hidden file is visible"; exit 12; }`,
      `echo ok > '${join(workspace, 'written')}' || { echo "the workspace is not writable"; exit 13; }`,
      'echo sandbox-ok',
    ].join('\n');
    const spec = sandbox.wrap({
      file: '/bin/sh',
      args: ['-c', script],
      cwd: workspace,
      env: { PATH: '/usr/bin:/bin' },
      mode: 'pipes',
    });
    const out = await run(spec.file, spec.args, options.timeoutMs ?? 10_000);
    if (out.code === 0 && out.stdout.includes('sandbox-ok'))
      return { ok: true, bwrap, ms: performance.now() - started };
    const why = (out.stdout + out.stderr).trim().split('\n').slice(-3).join(' / ');
    return { ok: false, reason: `${bwrap} failed (exit ${out.code ?? out.signal}): ${why || 'no output'}` };
  } catch (err) {
    return { ok: false, reason: `${bwrap} could not be run: ${(err as Error).message}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function run(
  file: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<{ code: number | null; signal: string | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, [...args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: '/usr/bin:/bin' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    timer.unref();
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
