import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import * as pty from 'node-pty';
import type { EndReason } from '../endReasons.js';
import { SessionClosedError, SpawnFailedError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { type KillResult, killTree } from '../process/killTree.js';
import type { ProcessTable } from '../process/ProcessTable.js';
import { readProc } from '../process/procfs.js';
import type { Store } from '../store/Store.js';
import type { AgentProfile } from './AgentProfile.js';
import { resolveExecutable } from './resolveExecutable.js';
import { sanitizeInput } from './sanitize.js';
import { type ScreenState, TurnReader } from './TurnReader.js';

export type SessionState = 'starting' | 'idle' | 'busy' | 'closing' | 'closed';

export interface TurnResult {
  readonly turnId: number;
  readonly text: string;
  readonly durationMs: number;
  /** True when the turn was interrupted (Ctrl-C) before the agent finished. */
  readonly cancelled: boolean;
}

export interface CloseResult {
  readonly reason: EndReason;
  readonly kill: KillResult;
  readonly exitCode: number | undefined;
  readonly exitSignal: number | undefined;
  /** The agent's last lines, for telling the user what happened. */
  readonly lastOutput: string;
}

export type PermissionAnswer = 'allow' | 'deny' | 'always';

export interface AgentSessionEvents {
  state: [SessionState];
  /** Agent output arrived; call `partial()` to read the turn so far. Fired per pty chunk: keep handlers cheap. */
  activity: [];
  turnStart: [{ turnId: number; text: string }];
  turnEnd: [TurnResult];
  permission: [{ turnId: number; text: string }];
  closed: [CloseResult];
}

export interface AgentSessionOptions {
  readonly sessionId: string;
  readonly threadId: string;
  readonly channelId?: string | undefined;
  readonly userId?: string | undefined;
  readonly instanceId: string;
  readonly marker: string;
  /** The agent executable (KIRO_CLI_PATH), resolved against the agent's PATH. */
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /** The agent's whole environment (already filtered through the allowlist). */
  readonly env: Readonly<Record<string, string>>;
  readonly profile: AgentProfile;
  readonly table: ProcessTable;
  readonly logger: Logger;
  readonly store?: Store | undefined;
  /** SIGTERM to SIGKILL grace, ms. */
  readonly killGraceMs: number;
  /** Give up when no prompt appears this long after spawn, ms. */
  readonly spawnTimeoutMs: number;
  /** Fallback end of turn: this long without output while the last line on screen is a prompt, ms. */
  readonly turnQuietMs: number;
  readonly maxTurnChars?: number;
  readonly cols?: number;
  readonly rows?: number;
  readonly now?: () => number;
}

/** Called when a queued message becomes the running turn; lets a caller bind a reply stream to it. */
export interface PromptHooks {
  readonly onStart?: (turnId: number) => void;
}

interface QueuedTurn {
  readonly text: string;
  readonly hooks: PromptHooks;
  readonly resolve: (r: TurnResult) => void;
  readonly reject: (e: Error) => void;
}

/** Pause the pty when this many bytes wait to be parsed; resume below the low mark. Bounds memory under a flood. */
const HIGH_WATER = 512 * 1024;
const LOW_WATER = 64 * 1024;

/**
 * One agent in one pseudo-terminal for one Discord thread. Turns are queued and run one at a time; the end of a
 * turn is the profile's prompt coming back. `close(reason)` is the only way out and kills the whole tree.
 */
export class AgentSession extends EventEmitter<AgentSessionEvents> {
  readonly id: string;
  readonly threadId: string;
  readonly channelId: string | undefined;
  readonly userId: string | undefined;
  readonly marker: string;
  readonly cwd: string;
  readonly startedAt: number;
  /** Resolves when the agent first shows its prompt; rejects with SpawnFailedError or SessionClosedError. */
  readonly ready: Promise<void>;

  private readonly opts: AgentSessionOptions;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly reader: TurnReader;
  private readonly queue: QueuedTurn[] = [];
  private proc: pty.IPty | undefined;
  private pidStart: number | undefined;
  private _state: SessionState = 'starting';
  private current: (QueuedTurn & { turnId: number; startedAt: number; cancelled: boolean }) | undefined;
  private turnCounter = 0;
  private pendingPermissionText: string | undefined;
  private closing: Promise<CloseResult> | undefined;
  private endReason: EndReason | undefined;
  private exitInfo: { exitCode: number; signal: number | undefined } | undefined;
  private exitWaiters: (() => void)[] = [];
  private fatalMessage: string | undefined;
  private pendingBytes = 0;
  /** The last output write to the terminal; exit handling waits for it so no output is lost. */
  private lastParse: Promise<unknown> = Promise.resolve();
  private paused = false;
  private spawnTimer: NodeJS.Timeout | undefined;
  private quietTimer: NodeJS.Timeout | undefined;
  private resolveReady!: () => void;
  private rejectReady!: (e: Error) => void;
  private disposables: { dispose(): void }[] = [];
  /** Last agent output or user input, ms (the idle clock). */
  lastActivityAt: number;
  /** Last agent output, ms. */
  lastOutputAt: number;

  constructor(options: AgentSessionOptions) {
    super();
    this.opts = options;
    this.id = options.sessionId;
    this.threadId = options.threadId;
    this.channelId = options.channelId;
    this.userId = options.userId;
    this.marker = options.marker;
    this.cwd = options.cwd;
    this.now = options.now ?? Date.now;
    this.startedAt = this.now();
    this.lastActivityAt = this.startedAt;
    this.lastOutputAt = this.startedAt;
    this.log = options.logger.child({ threadId: options.threadId, sessionId: options.sessionId });
    this.reader = new TurnReader(options.profile, {
      ...(options.cols !== undefined && { cols: options.cols }),
      ...(options.rows !== undefined && { rows: options.rows }),
      ...(options.maxTurnChars !== undefined && { maxTurnChars: options.maxTurnChars }),
    });
    this.reader.onReply = (data) => this.proc?.write(data);
    this.ready = new Promise<void>((resolve, reject) => {
      this.resolveReady = resolve;
      this.rejectReady = reject;
    });
    // Callers that never await `ready` must not see an unhandled rejection.
    this.ready.catch(() => {});
  }

  get state(): SessionState {
    return this._state;
  }

  /** The pty child's pid (the agent wrapper), once spawned. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get pidStartTime(): number | undefined {
    return this.pidStart;
  }

  /** Id of the running turn, or undefined when no turn runs. */
  get currentTurnId(): number | undefined {
    return this.current?.turnId;
  }

  /** Start of the running turn, ms, or undefined when no turn runs. */
  get turnStartedAt(): number | undefined {
    return this.current?.startedAt;
  }

  /** The permission question the agent waits on, if any. */
  get pendingPermission(): string | undefined {
    return this.pendingPermissionText;
  }

  /** Messages waiting behind the running turn. */
  get queued(): number {
    return this.queue.length;
  }

  get closeReason(): EndReason | undefined {
    return this.endReason;
  }

  /** Spawns the agent. Failures (missing executable, spawn error) close the session as `spawn_failed`. */
  start(): this {
    const o = this.opts;
    const command = [o.command, ...o.args];
    o.store?.insertSession({
      id: this.id,
      threadId: this.threadId,
      channelId: this.channelId,
      userId: this.userId,
      instanceId: o.instanceId,
      marker: this.marker,
      cwd: this.cwd,
      command,
      startedAt: this.startedAt,
    });
    const file = resolveExecutable(o.command, o.env.PATH, this.cwd);
    if (!file) {
      this.fatalMessage = `The agent executable \`${o.command}\` was not found or is not executable on the bot host (set KIRO_CLI_PATH, or install kiro-cli).`;
      void this.close('spawn_failed');
      return this;
    }
    try {
      mkdirSync(this.cwd, { recursive: true });
      this.proc = pty.spawn(file, [...o.args], {
        name: 'xterm-256color',
        cols: this.reader.cols,
        rows: this.reader.rows,
        cwd: this.cwd,
        env: { ...o.env },
      });
    } catch (err) {
      this.fatalMessage = `The agent could not be started: ${(err as Error).message}`;
      this.log.error({ err }, 'spawn failed');
      void this.close('spawn_failed');
      return this;
    }
    const pid = this.proc.pid;
    this.pidStart = readProc(pid)?.startTime;
    this.log.info({ pid, command }, 'agent spawned');
    o.store?.markSpawned(this.id, pid, this.pidStart ?? 0, { pid, command, cwd: this.cwd });
    this.disposables.push(
      this.proc.onData((data) => this.onData(data)),
      this.proc.onExit(({ exitCode, signal }) => this.onExit(exitCode, signal)),
    );
    this.spawnTimer = setTimeout(() => {
      if (this._state !== 'starting') return;
      this.fatalMessage = `The agent did not show its prompt within ${o.spawnTimeoutMs} ms.`;
      void this.close('spawn_failed');
    }, o.spawnTimeoutMs);
    this.spawnTimer.unref();
    return this;
  }

  /** Queues a message as a turn; resolves with the reply when the agent's prompt returns. */
  prompt(text: string, hooks: PromptHooks = {}): Promise<TurnResult> {
    if (this.closing)
      return Promise.reject(new SessionClosedError(this.endReason ?? 'closing', '', { delivered: false }));
    if (sanitizeInput(text).trim() === '')
      return Promise.reject(new TypeError('an empty message is not a turn'));
    this.lastActivityAt = this.now();
    return new Promise<TurnResult>((resolve, reject) => {
      this.queue.push({ text, hooks, resolve, reject });
      if (this._state === 'idle') this.startNextTurn();
    });
  }

  /** The running turn's reply so far (for streaming), or '' when idle. */
  partial(): string {
    return this.current ? this.reader.partial() : '';
  }

  /** Sends Ctrl-C to cancel the running turn. Returns false when no turn runs. */
  interrupt(): boolean {
    if (!this.current || !this.proc || this.closing) return false;
    this.current.cancelled = true;
    this.pendingPermissionText = undefined;
    this.proc.write(this.opts.profile.interrupt);
    this.opts.store?.recordEvent(this.id, 'interrupt', { turnId: this.current.turnId });
    return true;
  }

  /** Answers the permission prompt. Returns false when no prompt is pending (it expired or was answered). */
  answerPermission(answer: PermissionAnswer): boolean {
    if (!this.pendingPermissionText || !this.proc || this.closing) return false;
    this.pendingPermissionText = undefined;
    this.lastActivityAt = this.now();
    this.reader.skipEcho(1);
    this.proc.write(this.opts.profile.answers[answer] + this.opts.profile.submit);
    this.opts.store?.recordEvent(this.id, 'permission_answer', { answer });
    return true;
  }

  /** The agent's recent output, for error messages. */
  recentOutput(): string {
    return this.reader.recentOutput();
  }

  /**
   * Ends the session: rejects queued turns, kills every process of the tree, records the end. Idempotent: every
   * call returns the first call's promise, whatever reason it gives.
   */
  close(reason: EndReason): Promise<CloseResult> {
    if (this.closing) return this.closing;
    this.endReason = reason;
    // Set before 'closing' is emitted, so a listener that calls close() again gets this same promise.
    this.closing = this.doClose(reason);
    this.setState('closing');
    return this.closing;
  }

  private async doClose(reason: EndReason): Promise<CloseResult> {
    // Always finish asynchronously, so listeners see 'closing' before 'closed' whatever the path.
    await Promise.resolve();
    const o = this.opts;
    if (this.exitInfo) {
      // The agent exited by itself: let its last output reach the screen first, it often says why.
      await this.lastParse.catch(() => undefined);
      if (reason === 'spawn_failed' && !this.fatalMessage) {
        const recent = this.reader.recentOutput();
        this.fatalMessage =
          o.profile.fatal.find((f) => f.pattern.test(recent))?.message ??
          `The agent exited with code ${this.exitInfo.exitCode} before it was ready.`;
      }
    }
    clearTimeout(this.spawnTimer);
    clearTimeout(this.quietTimer);
    const lastOutput = this.lastWords();
    const error =
      reason === 'spawn_failed'
        ? new SpawnFailedError(this.fatalMessage ?? 'The agent exited before it was ready.', lastOutput)
        : new SessionClosedError(reason, lastOutput);
    this.rejectReady(error);
    // The running turn reached the agent; the queued ones never did, and say so (the caller may re-send them).
    const undelivered =
      reason === 'spawn_failed' ? error : new SessionClosedError(reason, lastOutput, { delivered: false });
    this.current?.reject(error);
    for (const t of this.queue) t.reject(undelivered);
    this.current = undefined;
    this.queue.length = 0;

    let kill: KillResult = { signal: 'none', forced: false, pids: [], survivors: [], durationMs: 0 };
    if (this.proc) {
      // Without the root's start time the root cannot be verified: the marker alone claims processes (pid 0),
      // which still reaches every descendant that kept it.
      const known = this.pidStart !== undefined;
      kill = await killTree(
        { pid: known ? this.proc.pid : 0, startTime: this.pidStart ?? -1, marker: this.marker },
        { graceMs: o.killGraceMs, table: o.table },
      );
      // The pty's exit event carries the exit status; it follows the kill closely.
      await this.waitForExit(1000);
    }
    for (const d of this.disposables) d.dispose();
    this.disposables = [];
    this.reader.dispose();
    if (kill.survivors.length > 0)
      this.log.error({ survivors: kill.survivors }, 'processes survived the tree kill');
    const result: CloseResult = {
      reason,
      kill,
      exitCode: this.exitInfo?.exitCode,
      exitSignal: this.exitInfo?.signal,
      lastOutput,
    };
    o.store?.endSession(this.id, {
      reason,
      endedAt: this.now(),
      exitCode: result.exitCode,
      exitSignal: result.exitSignal,
      killSignal: kill.signal,
      forced: kill.forced,
      pidsKilled: kill.pids,
      teardownMs: kill.durationMs,
      lastOutput: lastOutput.slice(-2000) || undefined,
    });
    this.log.info(
      {
        reason,
        signal: kill.signal,
        forced: kill.forced,
        pids: kill.pids,
        teardownMs: Math.round(kill.durationMs),
      },
      'session closed',
    );
    this.setState('closed');
    this.emit('closed', result);
    return result;
  }

  /** What to tell the user about the end: the spawn failure message, then the agent's last lines. */
  private lastWords(): string {
    const out = this.reader.recentOutput();
    return this.fatalMessage ? `${this.fatalMessage}${out ? `\n${out}` : ''}` : out;
  }

  private waitForExit(capMs: number): Promise<void> {
    if (this.exitInfo || !this.proc) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, capMs);
      timer.unref();
      this.exitWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private setState(state: SessionState): void {
    if (this._state === state) return;
    this._state = state;
    this.emit('state', state);
  }

  private onData(data: string): void {
    const t = this.now();
    this.lastOutputAt = t;
    this.lastActivityAt = t;
    this.pendingBytes += data.length;
    if (!this.paused && this.pendingBytes > HIGH_WATER && this.proc) {
      this.paused = true;
      this.proc.pause();
    }
    this.lastParse = this.reader.write(data).then((screen) => {
      this.pendingBytes -= data.length;
      if (this.paused && this.pendingBytes < LOW_WATER && this.proc && !this.closing) {
        this.paused = false;
        this.proc.resume();
      }
      this.onScreen(screen);
    });
  }

  private onScreen(screen: ScreenState): void {
    if (this.closing) return;
    if (this._state === 'starting') {
      if (screen.kind === 'prompt') {
        this.becomeReady();
        return;
      }
      const recent = this.reader.recentOutput();
      const fatal = this.opts.profile.fatal.find((f) => f.pattern.test(recent));
      if (fatal) this.fatalMessage = fatal.message;
      return;
    }
    if (this._state !== 'busy' || !this.current) return;
    this.emit('activity');
    this.armQuietTimer();
    if (!this.reader.echoDone) return;
    if (screen.kind === 'permission' && this.pendingPermissionText === undefined) {
      this.pendingPermissionText = screen.text;
      this.opts.store?.recordEvent(this.id, 'permission', { text: screen.text });
      this.emit('permission', { turnId: this.current.turnId, text: screen.text });
    } else if (screen.kind === 'prompt' && this.pendingPermissionText === undefined) {
      this.finishTurn();
    }
  }

  private becomeReady(): void {
    clearTimeout(this.spawnTimer);
    const t = this.now();
    this.opts.store?.markReady(this.id, t, { ms: t - this.startedAt });
    this.log.debug({ ms: t - this.startedAt }, 'agent ready');
    this.setState('idle');
    this.resolveReady();
    this.startNextTurn();
  }

  private startNextTurn(): void {
    const next = this.queue.shift();
    if (!next || !this.proc) return;
    const text = sanitizeInput(next.text).replace(/\n+$/, '');
    const turnId = ++this.turnCounter;
    this.current = { ...next, turnId, startedAt: this.now(), cancelled: false };
    const profile = this.opts.profile;
    const lines = text.split('\n');
    let payload: string;
    if (lines.length > 1 && profile.multiline === 'bracketed-paste') {
      payload = `\x1b[200~${lines.join('\r')}\x1b[201~${profile.submit}`;
    } else {
      payload = `${lines.join(' ')}${profile.submit}`;
    }
    const echoLines = profile.multiline === 'bracketed-paste' ? lines.length : 1;
    this.reader.beginTurn(echoLines);
    this.setState('busy');
    this.opts.store?.countTurn(this.id);
    this.opts.store?.recordEvent(this.id, 'turn_start', { turnId, chars: text.length });
    next.hooks.onStart?.(turnId);
    this.emit('turnStart', { turnId, text });
    this.proc.write(payload);
    this.armQuietTimer();
  }

  private finishTurn(): void {
    const turn = this.current;
    if (!turn) return;
    clearTimeout(this.quietTimer);
    this.quietTimer = undefined;
    this.current = undefined;
    const result: TurnResult = {
      turnId: turn.turnId,
      text: this.reader.endTurn(),
      durationMs: this.now() - turn.startedAt,
      cancelled: turn.cancelled,
    };
    this.opts.store?.recordEvent(this.id, 'turn_end', {
      turnId: turn.turnId,
      ms: result.durationMs,
      chars: result.text.length,
      cancelled: turn.cancelled,
    });
    this.setState('idle');
    this.emit('turnEnd', result);
    turn.resolve(result);
    this.startNextTurn();
  }

  /** Fallback for agents whose prompt redraw we missed: a quiet screen whose last line is a prompt ends the turn. */
  private armQuietTimer(): void {
    // One timer per quiet period, not one per chunk of output: on firing it checks how long output has really
    // been quiet and waits out the rest (this runs in the pty data path).
    if (this.quietTimer) return;
    const check = () => {
      this.quietTimer = undefined;
      if (this._state !== 'busy') return;
      const quietFor = this.now() - this.lastOutputAt;
      if (quietFor < this.opts.turnQuietMs) {
        this.quietTimer = setTimeout(check, this.opts.turnQuietMs - quietFor);
        this.quietTimer.unref();
        return;
      }
      if (this.reader.echoDone && !this.pendingPermissionText && this.reader.promptVisible()) {
        this.log.debug('turn ended by quiet-period fallback');
        this.finishTurn();
      }
    };
    this.quietTimer = setTimeout(check, this.opts.turnQuietMs);
    this.quietTimer.unref();
  }

  private onExit(exitCode: number, signal: number | undefined): void {
    this.exitInfo = { exitCode, signal: signal || undefined };
    for (const w of this.exitWaiters) w();
    this.exitWaiters = [];
    if (this.closing) return;
    const reason: EndReason = this._state === 'starting' ? 'spawn_failed' : 'crashed';
    this.log.warn({ exitCode, signal, reason }, 'agent exited by itself');
    // Closing at once (not after the last output is parsed) so that nobody is handed a dead session meanwhile;
    // doClose waits for the last output before it tells anyone why.
    void this.close(reason);
  }
}
