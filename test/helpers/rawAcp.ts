import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, constants, mkdtempSync, openSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ProcInfo, readProc } from '../../src/process/procfs.js';
import { identify, type Pid, treeOf } from './processes.js';
import { waitFor } from './wait.js';

// A tiny hand-written ACP client over real pipes, for the fake's own tests (deliberately not the SDK the bot
// uses). Every stdout line is kept: parsed frames in `frames`, anything else in `garbage`.

export const FAKE_DIR = fileURLToPath(new URL('../fixtures/fake-kiro/', import.meta.url));
export const FAKE = join(FAKE_DIR, 'kiro-cli');
export const FAKE_CHAT = join(FAKE_DIR, 'kiro-cli-chat');

// biome-ignore lint/suspicious/noExplicitAny: protocol frames are arbitrary JSON; the tests assert their shape.
export type Frame = Record<string, any>;

export interface RawAcpOptions {
  readonly args?: readonly string[];
  readonly env?: Record<string, string>;
  /** HOME of the fake (its session store); a new temporary directory by default. */
  readonly home?: string;
  /** Run `kiro-cli-chat` directly instead of the `kiro-cli` wrapper. */
  readonly direct?: boolean;
  /**
   * Feed stdin through a FIFO this client holds open, instead of a pipe owned by the ChildProcess: node destroys
   * a child's stdin as soon as that (direct) child exits, which would hand the orphaned chat an EOF.
   */
  readonly fifoStdin?: boolean;
}

export class RawAcp {
  readonly child: ChildProcess;
  readonly home: string;
  readonly pid: number;
  /** Every frame received, in order, with the raw line it came from. */
  readonly frames: Frame[] = [];
  readonly lines: string[] = [];
  readonly garbage: string[] = [];
  stderr = '';
  stdoutBytes = 0;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private rest = '';
  private stdinFd: number | undefined;
  private nextId = 1;

  constructor(opts: RawAcpOptions = {}) {
    this.home = opts.home ?? mkdtempSync(join(tmpdir(), 'fake-acp-'));
    const file = opts.direct ? FAKE_CHAT : FAKE;
    const args = opts.args ?? ['acp'];
    let readFd: number | undefined;
    if (opts.fifoStdin) {
      const fifo = join(this.home, 'stdin.fifo');
      execFileSync('mkfifo', [fifo]);
      // The read end first (non-blocking, so opening does not wait for a writer), then this client's write end.
      readFd = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
      this.stdinFd = openSync(fifo, constants.O_WRONLY);
    }
    // Like the bot: plain pipes and a new session (pid = pgid = sid), so the whole tree can be found and killed.
    this.child = spawn(file, opts.direct && args[0] !== 'acp' ? ['acp', ...args] : [...args], {
      cwd: this.home,
      env: { PATH: process.env.PATH ?? '', HOME: this.home, ...opts.env },
      stdio: [readFd ?? 'pipe', 'pipe', 'pipe'],
      detached: true,
    });
    // Only the child keeps the read end: the FIFO ends when this client closes its write end.
    if (readFd !== undefined) closeSync(readFd);
    this.pid = this.child.pid!;
    this.child.stdout!.setEncoding('utf8');
    this.child.stdout!.on('data', (d: string) => {
      this.stdoutBytes += Buffer.byteLength(d);
      const parts = (this.rest + d).split('\n');
      this.rest = parts.pop()!;
      for (const line of parts) this.onLine(line);
    });
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (d: string) => {
      this.stderr += d;
    });
    this.child.stdin?.on('error', () => {});
    this.child.on('exit', (code, signal) => {
      this.exit = { code, signal };
    });
  }

  /** The bytes after the last newline (a line the fake never ended). */
  get partial(): string {
    return this.rest;
  }

  private onLine(line: string): void {
    this.lines.push(line);
    try {
      const f = JSON.parse(line) as unknown;
      if (f && typeof f === 'object' && !Array.isArray(f) && (f as Frame).jsonrpc === '2.0') {
        this.frames.push(f as Frame);
        return;
      }
    } catch {
      // not JSON
    }
    this.garbage.push(line);
  }

  write(text: string): void {
    if (this.stdinFd !== undefined) writeSync(this.stdinFd, text);
    else this.child.stdin!.write(text);
  }

  /** Closes the fake's stdin (EOF), as a client that is done does. */
  end(): void {
    if (this.stdinFd !== undefined) {
      closeSync(this.stdinFd);
      this.stdinFd = undefined;
    } else this.child.stdin!.end();
  }

  /** Closes stdin at once (test cleanup). */
  destroy(): void {
    if (this.stdinFd !== undefined) this.end();
    else this.child.stdin?.destroy();
  }

  send(frame: Frame): void {
    this.write(`${JSON.stringify(frame)}\n`);
  }

  notify(method: string, params: Frame): void {
    this.send({ jsonrpc: '2.0', method, params });
  }

  /** Sends a request; returns its id. */
  call(method: string, params: Frame): number {
    const id = this.nextId++;
    this.send({ jsonrpc: '2.0', id, method, params });
    return id;
  }

  /** Sends a request and waits for its response frame. */
  async request(method: string, params: Frame, timeoutMs = 5000): Promise<Frame> {
    return this.response(this.call(method, params), timeoutMs);
  }

  response(id: number, timeoutMs = 5000): Promise<Frame> {
    return this.waitFrame(
      (f) => f.id === id && f.method === undefined,
      `the response to ${id}`,
      0,
      timeoutMs,
    );
  }

  /** Waits for a frame matching `pred` at index ≥ `from`. */
  waitFrame(pred: (f: Frame) => boolean, what: string, from = 0, timeoutMs = 5000): Promise<Frame> {
    return waitFor(
      () => {
        if (this.exit && !this.frames.slice(from).some(pred))
          throw new Error(`the fake ${this.pid} exited (${JSON.stringify(this.exit)}): ${this.stderr}`);
        return this.frames.slice(from).find(pred);
      },
      what,
      timeoutMs,
      5,
    );
  }

  /** The agent→client request for `method` at index ≥ `from`. */
  waitRequest(method: string, from = 0, timeoutMs = 5000): Promise<Frame> {
    return this.waitFrame((f) => f.method === method && f.id !== undefined, method, from, timeoutMs);
  }

  answer(id: number | string, result: Frame): void {
    this.send({ jsonrpc: '2.0', result, id });
  }

  async initialize(): Promise<Frame> {
    return this.request('initialize', {
      protocolVersion: 1,
      clientCapabilities: { fs: { readTextFile: false, writeTextFile: false }, terminal: false },
      clientInfo: { name: 'raw-test', version: '1' },
    });
  }

  /** initialize + session/new; returns the new session's id. */
  async start(cwd = this.home): Promise<string> {
    await this.initialize();
    const r = await this.request('session/new', { cwd, mcpServers: [] });
    if (!r.result) throw new Error(`session/new failed: ${JSON.stringify(r)}`);
    return r.result.sessionId as string;
  }

  /** One session/prompt with text; returns its response and the session/update frames between. */
  async prompt(sessionId: string, text: string | Frame[], timeoutMs = 5000): Promise<Turn> {
    const from = this.frames.length;
    const prompt = typeof text === 'string' ? [{ type: 'text', text }] : text;
    const id = this.call('session/prompt', { sessionId, prompt });
    const response = await this.response(id, timeoutMs);
    return turnOf(this.frames.slice(from), response);
  }

  exited(timeoutMs = 5000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return waitFor(() => this.exit, `exit of the fake ${this.pid}`, timeoutMs);
  }

  /** The kiro-cli-chat child of the wrapper. */
  chat(): Promise<ProcInfo> {
    return waitFor(() => {
      const p = treeOf(this.pid).find((q) => q.ppid === this.pid && q.comm === 'kiro-cli-chat');
      return p;
    }, `the chat child of ${this.pid}`);
  }

  /** Every live process of the fake's session (its tree, MCP servers included), identified for later checks. */
  tree(): Pid[] {
    return identify(treeOf(this.pid).map((p) => p.pid));
  }
}

export interface Turn {
  readonly response: Frame;
  readonly frames: Frame[];
  /** The concatenated agent_message_chunk text of the turn. */
  readonly text: string;
  readonly updates: Frame[];
}

export function turnOf(frames: Frame[], response: Frame): Turn {
  const end = frames.indexOf(response);
  const within = end >= 0 ? frames.slice(0, end + 1) : frames;
  const updates = within.filter((f) => f.method === 'session/update').map((f) => f.params.update as Frame);
  const text = updates
    .filter((u) => u.sessionUpdate === 'agent_message_chunk')
    .map((u) => u.content.text as string)
    .join('');
  return { response, frames: within, text, updates };
}

export function alivePid(pid: number): boolean {
  const p = readProc(pid);
  return p !== undefined && p.state !== 'Z' && p.state !== 'X';
}
