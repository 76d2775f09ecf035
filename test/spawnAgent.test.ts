import { afterEach, describe, expect, it } from 'vitest';
import { killTree } from '../src/process/killTree.js';
import { ProcessTable } from '../src/process/ProcessTable.js';
import { MARKER_VAR, readProc } from '../src/process/procfs.js';
import { type AgentProcess, type SpawnMode, spawnAgent } from '../src/process/spawnAgent.js';
import { alive, identify, killAll, type Pid } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

const table = new ProcessTable();
const started: Pid[] = [];
afterEach(async () => {
  // Nothing a test spawned may outlive it.
  expect(alive(started)).toEqual([]);
  await killAll(started);
  started.length = 0;
});

/** A shell agent that prints its ids and environment marker, then echoes stdin lines, stderr noise included. */
const SCRIPT = `echo "ids $$ $(cut -d' ' -f5,6 /proc/$$/stat) marker=$${MARKER_VAR}"; echo oops >&2; while read -r l; do echo "got $l"; done`;

function spawnShell(mode: SpawnMode, marker: string): AgentProcess {
  const p = spawnAgent({
    file: '/bin/sh',
    args: ['-c', SCRIPT],
    cwd: '/tmp',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', [MARKER_VAR]: marker },
    mode,
  });
  started.push(...identify([p.pid]));
  return p;
}

async function kill(p: AgentProcess, marker: string) {
  return killTree({ pid: p.pid, startTime: p.startTime!, marker }, { graceMs: 300, table });
}

describe('spawnAgent: one spawn path for both transports', () => {
  it.each(['pty', 'pipes'] as const)(
    '%s: the agent leads its own session and group and carries the marker',
    async (mode) => {
      const marker = `tw-test-${mode}-${process.pid}`;
      const p = spawnShell(mode, marker);
      let out = '';
      p.onData((d) => {
        out += d;
      });
      const line = await waitFor(() => /ids (\d+) (\d+) (\d+) marker=(\S+)/.exec(out), 'the ids line');
      expect(Number(line[1])).toBe(p.pid);
      expect(Number(line[2])).toBe(p.pid); // pgid
      expect(Number(line[3])).toBe(p.pid); // sid
      expect(line[4]).toBe(marker);
      expect(p.startTime).toBe(readProc(p.pid)!.startTime);
      p.write('hello\n');
      await waitFor(() => out.includes('got hello'), 'the echo');
      const result = await kill(p, marker);
      expect(result.pids).toContain(p.pid);
    },
  );

  it('pipes: stderr is its own stream, never mixed into stdout', async () => {
    const marker = `tw-test-stderr-${process.pid}`;
    const p = spawnShell('pipes', marker);
    let out = '';
    let err = '';
    p.onData((d) => {
      out += d;
    });
    p.onStderr((d) => {
      err += d;
    });
    await waitFor(() => err.includes('oops') && out.includes('ids'), 'both streams');
    expect(out).not.toContain('oops');
    await kill(p, marker);
  });

  it('pipes: reports the exit code after all output was read, and EOF on stdin ends a reader', async () => {
    const marker = `tw-test-eof-${process.pid}`;
    const p = spawnShell('pipes', marker);
    let out = '';
    p.onData((d) => {
      out += d;
    });
    const exited = new Promise<{ exitCode: number; signal: number | undefined }>((r) => p.onExit(r));
    p.write('last\n');
    p.endInput();
    const e = await exited;
    expect(e).toEqual({ exitCode: 0, signal: undefined });
    expect(out).toContain('got last');
    // A write after the exit is dropped, not thrown.
    expect(() => p.write('late\n')).not.toThrow();
  });

  it('pipes: a signal death reports the signal number', async () => {
    const marker = `tw-test-sig-${process.pid}`;
    const p = spawnShell('pipes', marker);
    const exited = new Promise<{ exitCode: number; signal: number | undefined }>((r) => p.onExit(r));
    process.kill(p.pid, 'SIGKILL');
    expect((await exited).signal).toBe(9);
  });

  it('the wrapper hook is the one place the command is rewritten, for both modes', async () => {
    for (const mode of ['pty', 'pipes'] as const) {
      const marker = `tw-test-wrap-${mode}-${process.pid}`;
      const seen: string[] = [];
      const p = spawnAgent(
        {
          file: '/bin/false',
          args: [],
          cwd: '/tmp',
          env: { PATH: process.env.PATH ?? '/usr/bin:/bin', [MARKER_VAR]: marker },
          mode,
        },
        (spec) => {
          seen.push(spec.mode);
          return { ...spec, file: '/bin/sh', args: ['-c', 'echo wrapped; exec sleep 30'] };
        },
      );
      started.push(...identify([p.pid]));
      let out = '';
      p.onData((d) => {
        out += d;
      });
      await waitFor(() => out.includes('wrapped'), 'the wrapped command');
      expect(p.spec.file).toBe('/bin/sh');
      expect(seen).toEqual([mode]);
      await kill(p, marker);
    }
  });

  it('pipes: a missing executable throws at once instead of leaving a process', () => {
    expect(() =>
      spawnAgent({ file: '/nonexistent/agent', args: [], cwd: '/tmp', env: {}, mode: 'pipes' }),
    ).toThrow(/could not spawn/);
  });
});
