import { type StdioOptions, spawn as spawnChild } from 'node:child_process';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
import type { Readable, Writable } from 'node:stream';
import * as pty from 'node-pty';
import { agentPriority } from './agentPriority.js';
import { readProc } from './procfs.js';
import type { AgentSandbox } from './sandbox/AgentSandbox.js';
import type { HostPid } from './sandbox/locateAgent.js';

/** How the agent's stdio is wired: a pseudo-terminal (classic line UI) or three plain pipes (ACP). */
export type SpawnMode = 'pty' | 'pipes';

export interface SpawnSpec {
  /** The executable, already resolved to a path. */
  readonly file: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /** The agent's whole environment (allowlisted, marker included). */
  readonly env: Readonly<Record<string, string>>;
  readonly mode: SpawnMode;
  /** Terminal size, pty mode only. */
  readonly cols?: number;
  readonly rows?: number;
  /** AGENT_NICE: run the agent's session at this lower CPU priority (agentPriority.ts); 0 or unset leaves it. */
  readonly nice?: number;
}

/**
 * Rewrites a spec before it is spawned: the one place a sandbox wraps the agent's command (e.g. `bwrap … -- file
 * args`). Whatever it returns is spawned in the same way, so both transports are wrapped alike.
 */
export type SpawnWrapper = (spec: SpawnSpec) => SpawnSpec;

export interface Disposable {
  dispose(): void;
}

/** A running agent, whatever its stdio. Output arrives as strings (UTF-8, split on any byte boundary safely). */
export interface AgentProcess {
  readonly mode: SpawnMode;
  /**
   * The agent's pid: the spawned process, a session leader (pid = pgid = sid) in both modes; in a sandbox, the
   * agent's own host pid (its namespace's pid 2), not the sandbox's.
   */
  pid: number;
  /** Set when the agent runs in a sandbox: its name and the sandbox's own processes (they get only SIGKILL). */
  readonly sandbox?: { readonly name: string; readonly infra: readonly HostPid[] };
  /** Its start time in clock ticks (with pid, its identity for the kill), or undefined if it already exited. */
  startTime: number | undefined;
  /** The spec actually spawned (after the wrapper). */
  readonly spec: SpawnSpec;
  write(data: string): void;
  /** Stdout (pipes) or the terminal (pty). */
  onData(listener: (data: string) => void): Disposable;
  /** Stderr; never fires in pty mode (stderr is the terminal there). */
  onStderr(listener: (data: string) => void): Disposable;
  /** Fires once; `signal` is a signal number. */
  onExit(listener: (exit: { exitCode: number; signal: number | undefined }) => void): Disposable;
  pause(): void;
  resume(): void;
  /** The raw pipes, pipes mode only (for stream-based protocol clients). */
  readonly stdin: Writable | undefined;
  readonly stdout: Readable | undefined;
  /** Ends the agent's stdin (pipes) — for agents that shut down on EOF. */
  endInput(): void;
}

/**
 * The one spawn path for every agent. pty: node-pty (forkpty: the child calls setsid and gets the terminal).
 * pipes: child_process with `detached: true`, which also calls setsid, so the agent is a session leader either way
 * and killTree finds its whole tree by group and session id as well as by marker. Throws when the spawn fails
 * synchronously; an asynchronous failure (exec error) arrives as an exit.
 */
export function spawnAgent(spec: SpawnSpec, wrap?: SpawnWrapper | AgentSandbox): AgentProcess {
  let proc: AgentProcess;
  if (wrap === undefined || typeof wrap === 'function') {
    const s = wrap ? wrap(spec) : spec;
    proc = s.mode === 'pty' ? spawnPty(s) : spawnPipes(s);
  } else proc = spawnSandboxed(spec, wrap);
  // The agent's own pid (in a sandbox too: its session is what competes with the bot for the CPU), and the
  // sandbox's processes around it (a sandboxed ACP agent has a session of its own, apart from theirs).
  if (spec.nice) {
    agentPriority.lower(proc.pid, proc.startTime, spec.nice);
    for (const p of proc.sandbox?.infra ?? []) agentPriority.lower(p.pid, p.startTime, spec.nice);
  }
  return proc;
}

/**
 * The agent inside a sandbox: bwrap is the spawned child, the agent its grandchild. The pid and start time the
 * bot reports and kills by become the agent's own; bwrap passes on the agent's exit status, a death by signal n
 * as status 128 + n, which is turned back into the signal.
 */
function spawnSandboxed(spec: SpawnSpec, sandbox: AgentSandbox): AgentProcess {
  const wrapped = sandbox.wrap(spec);
  const proc = wrapped.mode === 'pty' ? spawnPty(wrapped) : spawnPipes(wrapped);
  const located = sandbox.locate(proc.pid);
  return {
    ...proc,
    pid: located?.agent.pid ?? proc.pid,
    startTime: located ? located.agent.startTime : proc.startTime,
    sandbox: { name: sandbox.name, infra: located?.infra ?? [] },
    onExit: (listener) =>
      proc.onExit(({ exitCode, signal }) =>
        listener(
          signal === undefined && exitCode > 128 && exitCode <= 128 + 64
            ? { exitCode: 0, signal: exitCode - 128 }
            : { exitCode, signal },
        ),
      ),
  };
}

function spawnPty(spec: SpawnSpec): AgentProcess {
  const proc = pty.spawn(spec.file, [...spec.args], {
    name: 'xterm-256color',
    cols: spec.cols ?? 200,
    rows: spec.rows ?? 50,
    cwd: spec.cwd,
    env: { ...spec.env },
  });
  const startTime = readProc(proc.pid)?.startTime;
  return {
    mode: 'pty',
    pid: proc.pid,
    startTime,
    spec,
    write: (data) => proc.write(data),
    onData: (listener) => proc.onData(listener),
    onStderr: () => ({ dispose() {} }),
    onExit: (listener) =>
      proc.onExit(({ exitCode, signal }) => listener({ exitCode, signal: signal || undefined })),
    pause: () => proc.pause(),
    resume: () => proc.resume(),
    stdin: undefined,
    stdout: undefined,
    endInput: () => {},
  };
}

/** How long after the agent's exit its pipes may stay open (held by a descendant) before the exit is reported, ms. */
const EXIT_DRAIN_MS = 250;

/** O_CLOEXEC as /proc/<pid>/fdinfo prints it (octal flags). */
const O_CLOEXEC = 0o2000000;

/**
 * Descriptors above 2 that this process holds without close-on-exec (inherited from whoever started the bot):
 * libuv passes those to every child. Node's own descriptors are all close-on-exec.
 */
export function inheritableFds(): number[] {
  const out: number[] = [];
  let names: string[];
  try {
    names = readdirSync('/proc/self/fd');
  } catch {
    return out;
  }
  for (const name of names) {
    const fd = Number(name);
    if (!(fd > 2)) continue;
    try {
      const flags = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))?.[1];
      if (flags !== undefined && (Number.parseInt(flags, 8) & O_CLOEXEC) === 0) out.push(fd);
    } catch {
      // closed meanwhile (the readdir's own descriptor among them)
    }
  }
  return out;
}

function spawnPipes(spec: SpawnSpec): AgentProcess {
  // node-pty closes every inherited descriptor in its child; libuv does not. Those the bot holds without
  // close-on-exec are replaced by /dev/null in the agent, so it never gets a descriptor of the bot.
  const stdio: StdioOptions = ['pipe', 'pipe', 'pipe'];
  const leaks = inheritableFds();
  let devNull: number | undefined;
  if (leaks.length > 0) {
    devNull = openSync('/dev/null', 'r');
    const max = Math.max(...leaks);
    for (let fd = 3; fd <= max; fd++) stdio.push(leaks.includes(fd) ? devNull : 'ignore');
  }
  let child: ReturnType<typeof spawnChild>;
  try {
    child = spawnChild(spec.file, [...spec.args], {
      cwd: spec.cwd,
      env: { ...spec.env },
      stdio,
      // setsid(): the agent leads its own session and group, like a pty child, and gets no controlling terminal.
      detached: true,
    });
  } finally {
    if (devNull !== undefined) closeSync(devNull);
  }
  const stdin = child.stdin!;
  const stdout = child.stdout!;
  const stderr = child.stderr!;
  let exit: { exitCode: number; signal: number | undefined } | undefined;
  const exitListeners = new Set<(e: { exitCode: number; signal: number | undefined }) => void>();
  const fireExit = (e: { exitCode: number; signal: number | undefined }) => {
    if (exit) return;
    exit = e;
    for (const l of exitListeners) l(e);
    exitListeners.clear();
  };
  // Report the exit once its output has been read ('close'), but a descendant that inherited stdout keeps the
  // pipe open past the agent's death: then report it shortly after 'exit' anyway.
  child.once('exit', (code, signal) => {
    const e = { exitCode: code ?? 0, signal: signal ? constants.signals[signal] : undefined };
    const timer = setTimeout(() => fireExit(e), EXIT_DRAIN_MS);
    timer.unref();
    child.once('close', () => {
      clearTimeout(timer);
      fireExit(e);
    });
  });
  // ENOENT/EACCES from exec leave no pid (thrown below); any later error is followed by 'close'.
  child.on('error', () => {});
  // A write after the agent died raises EPIPE on the stream; that is an exit, reported by 'close', not a crash.
  stdin.on('error', () => {});
  stdout.on('error', () => {});
  stderr.on('error', () => {});
  stdout.setEncoding('utf8');
  stderr.setEncoding('utf8');
  if (child.pid === undefined) throw new Error(`could not spawn ${spec.file}`);
  const pid = child.pid;
  const startTime = readProc(pid)?.startTime;
  const on = (stream: Readable, listener: (data: string) => void): Disposable => {
    stream.on('data', listener);
    return { dispose: () => stream.off('data', listener) };
  };
  return {
    mode: 'pipes',
    pid,
    startTime,
    spec,
    write: (data) => {
      if (!stdin.destroyed && stdin.writable) stdin.write(data);
    },
    onData: (listener) => on(stdout, listener),
    onStderr: (listener) => on(stderr, listener),
    onExit: (listener) => {
      if (exit) {
        const e = exit;
        queueMicrotask(() => listener(e));
        return { dispose() {} };
      }
      exitListeners.add(listener);
      return { dispose: () => exitListeners.delete(listener) };
    },
    pause: () => stdout.pause(),
    resume: () => stdout.resume(),
    stdin,
    stdout,
    endInput: () => {
      if (!stdin.destroyed) stdin.end();
    },
  };
}
