import { EventEmitter } from 'node:events';
import { mkdirSync } from 'node:fs';
import type { EndReason } from '../endReasons.js';
import { SessionClosedError, SpawnFailedError } from '../errors.js';
import type { Logger } from '../log/logger.js';
import { type KillResult, killTree } from '../process/killTree.js';
import { type MarkedProc, type ProcessTable, TreeIndex } from '../process/ProcessTable.js';
import type { AgentSandbox } from '../process/sandbox/AgentSandbox.js';
import { type AgentProcess, type SpawnWrapper, spawnAgent } from '../process/spawnAgent.js';
import { resolveExecutable } from './resolveExecutable.js';
import type { ReadyInfo, Transport, TransportSink, TurnEnd } from './Transport.js';
import type {
  AgentProtocol,
  Choices,
  CloseResult,
  PermissionRequest,
  PromptCapabilities,
  PromptInput,
  ResumeOutcome,
  SessionState,
  ToolCallInfo,
  TurnResult,
  TurnUsage,
} from './types.js';

/** How old a shared /proc scan may be for a tree snapshot, ms. */
const SNAPSHOT_SCAN_AGE_MS = 250;

/**
 * One index per shared scan: the sessions whose turns end within SNAPSHOT_SCAN_AGE_MS share the scan, and so its
 * index too (building it is O(processes); one per turn end was most of a turn end's cost with 200 sessions).
 */
const scanIndexes = new WeakMap<readonly MarkedProc[], TreeIndex>();

function indexOf(procs: readonly MarkedProc[]): TreeIndex {
  let index = scanIndexes.get(procs);
  if (!index) {
    index = new TreeIndex(procs);
    scanIndexes.set(procs, index);
  }
  return index;
}

export type {
  CloseResult,
  PermissionRequest,
  PromptInput,
  SessionState,
  TurnResult,
} from './types.js';

export interface AgentSessionEvents {
  state: [SessionState];
  /** The process is running (pid known); fired inside `start()`. */
  /** `isolation`: the sandbox's name ("bwrap") or "off". */
  spawned: [{ pid: number; pidStartTime: number | undefined; command: readonly string[]; isolation: string }];
  /** The agent took its first turn's worth of setup (prompt shown / ACP session created). */
  ready: [{ ms: number }];
  /** Agent output arrived for the running turn; call `partial()` to read it. Fired per chunk: keep handlers cheap. */
  activity: [];
  turnStart: [{ turnId: number; text: string }];
  turnEnd: [TurnResult];
  tool: [ToolCallInfo & { turnId: number }];
  permission: [PermissionRequest];
  permissionResolved: [{ requestId: string; optionId: string }];
  usage: [TurnUsage & { turnId: number }];
  /** After an attempt to continue the thread's earlier conversation (ACP session/load or its fallback). */
  resumed: [ResumeOutcome];
  /** The agent accepted a model or mode switch (a user's choice, or the thread's choice re-applied). */
  choices: [{ kind: 'model' | 'mode'; id: string }];
  /** A cancel was sent for the running turn. */
  cancel: [{ turnId: number }];
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
  /** Configured arguments (KIRO_ARGS); the transport appends its own. */
  readonly args: readonly string[];
  readonly cwd: string;
  /** The agent's whole environment (already filtered through the allowlist). */
  readonly env: Readonly<Record<string, string>>;
  /** The conversation: ACP or classic. */
  readonly transport: Transport;
  readonly table: ProcessTable;
  readonly logger: Logger;
  /** SIGTERM to SIGKILL grace, ms. */
  readonly killGraceMs: number;
  /** Give up when the agent is not ready this long after spawn, ms. */
  readonly spawnTimeoutMs: number;
  /** AGENT_NICE: the agent runs at this lower CPU priority than the bot (0 or unset: unchanged). */
  readonly agentNice?: number | undefined;
  /** The sandbox's hook on the spawn path. */
  /** Rewrites the spawn: a plain wrapper, or a sandbox (the agent's own pid is then found inside it). */
  readonly spawnWrapper?: SpawnWrapper | AgentSandbox | undefined;
  readonly now?: () => number;
}

/** Called when a queued message becomes the running turn; lets a caller bind a reply stream to it. */
export interface PromptHooks {
  readonly onStart?: (turnId: number) => void;
}

interface QueuedTurn {
  readonly input: PromptInput;
  readonly hooks: PromptHooks;
  readonly resolve: (r: TurnResult) => void;
  readonly reject: (e: Error) => void;
}

/**
 * One agent process for one Discord thread: the lifecycle (spawn, ready, a queue of turns run one at a time,
 * one idempotent close that kills the whole tree) and the events. The conversation itself is the transport's.
 */
export class AgentSession extends EventEmitter<AgentSessionEvents> {
  readonly id: string;
  readonly threadId: string;
  readonly channelId: string | undefined;
  readonly userId: string | undefined;
  readonly instanceId: string;
  readonly marker: string;
  readonly cwd: string;
  readonly startedAt: number;
  /** File and arguments as configured plus the transport's own. */
  readonly command: readonly string[];
  readonly protocol: AgentProtocol;
  /** Resolves when the agent is ready for turns; rejects with SpawnFailedError or SessionClosedError. */
  readonly ready: Promise<void>;

  /** Whether the thread's earlier conversation was restored, once the agent is ready (ACP with an earlier session). */
  get resumeOutcome(): ResumeOutcome | undefined {
    return this._resumeOutcome;
  }

  private _resumeOutcome: ResumeOutcome | undefined;
  /**
   * Set by forceKill(), at once: a close under way waits for it and records the SIGKILL that ended the tree, not
   * the SIGTERM it had begun with (its own wait can see the tree gone before the forced kill has returned).
   */
  private forcedKill: Promise<KillResult> | undefined;
  private readonly opts: AgentSessionOptions;
  private readonly transport: Transport;
  private readonly log: Logger;
  private readonly now: () => number;
  private readonly queue: QueuedTurn[] = [];
  private proc: AgentProcess | undefined;
  private _state: SessionState = 'starting';
  private current: (QueuedTurn & { turnId: number; startedAt: number; usage?: TurnUsage }) | undefined;
  private turnCounter = 0;
  private closing: Promise<CloseResult> | undefined;
  /** The reply text of the turn the close cut off (see partial()). */
  private cutOffText = '';
  private endReason: EndReason | undefined;
  private exitInfo: { exitCode: number; signal: number | undefined } | undefined;
  private exitWaiters: (() => void)[] = [];
  private fatalMessage: string | undefined;
  private spawnTimer: NodeJS.Timeout | undefined;
  private resolveReady!: () => void;
  private rejectReady!: (e: Error) => void;
  private disposables: { dispose(): void }[] = [];
  private file: string | undefined;
  /** Tree members seen while the root was alive: the kill still claims them after the root died (a crash). */
  private members: { pid: number; startTime: number }[] = [];
  private respawns = 0;
  /** Last agent output or user input, ms (the idle clock). */
  lastActivityAt: number;
  /** Last agent output, ms. */
  lastOutputAt: number;

  constructor(options: AgentSessionOptions) {
    super();
    this.opts = options;
    this.transport = options.transport;
    this.protocol = options.transport.protocol;
    this.id = options.sessionId;
    this.threadId = options.threadId;
    this.channelId = options.channelId;
    this.userId = options.userId;
    this.instanceId = options.instanceId;
    this.marker = options.marker;
    this.cwd = options.cwd;
    this.command = [options.command, ...options.args, ...options.transport.extraArgs()];
    this.now = options.now ?? Date.now;
    this.startedAt = this.now();
    this.lastActivityAt = this.startedAt;
    this.lastOutputAt = this.startedAt;
    this.log = options.logger.child({ threadId: options.threadId, sessionId: options.sessionId });
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

  /** The spawned agent's pid (a session leader), once spawned. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  get pidStartTime(): number | undefined {
    return this.proc?.startTime;
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
  get pendingPermission(): PermissionRequest | undefined {
    return this.transport.pendingPermission;
  }

  /** Messages waiting behind the running turn. */
  get queued(): number {
    return this.queue.length;
  }

  get closeReason(): EndReason | undefined {
    return this.endReason;
  }

  /** ACP session id, once known. */
  get agentSessionId(): string | undefined {
    return this.transport.agentSessionId;
  }

  get promptCapabilities(): PromptCapabilities {
    return this.transport.promptCapabilities;
  }

  models(): Choices | undefined {
    return this.transport.models();
  }

  modes(): Choices | undefined {
    return this.transport.modes();
  }

  /** Spawns the agent. Failures (missing executable, spawn error) close the session as `spawn_failed`. */
  start(): this {
    const o = this.opts;
    const file = resolveExecutable(o.command, o.env.PATH, this.cwd);
    if (!file) {
      this.fatalMessage = `The agent executable \`${o.command}\` was not found or is not executable on the bot host (set KIRO_CLI_PATH, or install kiro-cli).`;
      void this.close('spawn_failed');
      return this;
    }
    this.file = file;
    this.spawnProcess();
    return this;
  }

  /** Spawns the agent process and hands it to the transport; false (and closing) when the spawn failed. */
  private spawnProcess(): boolean {
    const o = this.opts;
    const t = this.transport;
    const file = this.file!;
    try {
      mkdirSync(this.cwd, { recursive: true });
      t.prepare?.(this.cwd);
      this.proc = spawnAgent(
        {
          file,
          args: this.command.slice(1),
          cwd: this.cwd,
          env: o.env,
          mode: t.mode,
          ...(t.cols !== undefined && { cols: t.cols }),
          ...(t.rows !== undefined && { rows: t.rows }),
          ...(o.agentNice !== undefined && { nice: o.agentNice }),
        },
        o.spawnWrapper,
      );
    } catch (err) {
      this.fatalMessage = `The agent could not be started: ${(err as Error).message}`;
      this.log.error({ err }, 'spawn failed');
      void this.close('spawn_failed');
      return false;
    }
    const proc = this.proc;
    this.log.info({ pid: proc.pid, command: this.command, mode: proc.mode }, 'agent spawned');
    this.emit('spawned', {
      pid: proc.pid,
      pidStartTime: proc.startTime,
      command: this.command,
      isolation: proc.sandbox?.name ?? 'off',
    });
    this.disposables.push(proc.onExit(({ exitCode, signal }) => this.onExit(proc, exitCode, signal)));
    clearTimeout(this.spawnTimer);
    this.spawnTimer = setTimeout(() => {
      if (this._state !== 'starting') return;
      this.fatalMessage = t.timeoutMessage(o.spawnTimeoutMs);
      void this.close('spawn_failed');
    }, o.spawnTimeoutMs);
    this.spawnTimer.unref();
    t.attach(proc, this.sink());
    return true;
  }

  /** Replaces the process before ready (ACP: a load that hung or exited): the old tree is killed first. */
  private async respawn(): Promise<void> {
    if (this.closing || this._state !== 'starting' || this.respawns >= 1) {
      if (!this.closing) void this.close('spawn_failed');
      return;
    }
    this.respawns++;
    const old = this.proc;
    for (const d of this.disposables) d.dispose();
    this.disposables = [];
    if (old) {
      this.log.info({ pid: old.pid }, 'replacing the agent process before ready');
      await killTree(
        {
          pid: old.startTime !== undefined ? old.pid : 0,
          startTime: old.startTime ?? -1,
          marker: this.marker,
        },
        { graceMs: this.opts.killGraceMs, table: this.opts.table },
      );
    }
    if (this.closing) return;
    this.exitInfo = undefined;
    this.spawnProcess();
  }

  /** Queues a message as a turn; resolves with the reply when the agent ends the turn. */
  prompt(input: PromptInput | string, hooks: PromptHooks = {}): Promise<TurnResult> {
    const message: PromptInput = typeof input === 'string' ? { text: input } : input;
    if (this.closing)
      return Promise.reject(new SessionClosedError(this.endReason ?? 'closing', '', { delivered: false }));
    if (message.text.replace(/[\p{Cc}\s]/gu, '') === '' && !message.attachments?.length)
      return Promise.reject(new TypeError('an empty message is not a turn'));
    this.lastActivityAt = this.now();
    return new Promise<TurnResult>((resolve, reject) => {
      this.queue.push({ input: message, hooks, resolve, reject });
      if (this._state === 'idle') this.startNextTurn();
    });
  }

  /**
   * The running turn's reply so far (for streaming), or '' when idle. Once the session has ended under a turn,
   * that turn's text as it was cut off: its view still has to show what the agent had said.
   */
  partial(): string {
    if (this.current) return this.transport.partial();
    return this.closing ? this.cutOffText : '';
  }

  /** Cancels the running turn (ACP: session/cancel; classic: Ctrl-C). Returns false when no turn runs. */
  cancel(): boolean {
    const turn = this.current;
    if (!turn || !this.proc || this.closing) return false;
    if (!this.transport.cancel()) return false;
    this.emit('cancel', { turnId: turn.turnId });
    return true;
  }

  /** Answers an open permission question. False when it is not open any more (expired, answered, unknown option). */
  answerPermission(requestId: string, optionId: string): boolean {
    if (!this.proc || this.closing) return false;
    if (!this.transport.answerPermission(requestId, optionId)) return false;
    this.lastActivityAt = this.now();
    return true;
  }

  /** Switches the model (ACP session/set_model). Throws a ThreadwardenError with a user-readable message. */
  setModel(id: string): Promise<void> {
    return this.transport.setModel(id);
  }

  /** Switches the mode / agent (ACP session/set_mode). */
  setMode(id: string): Promise<void> {
    return this.transport.setMode(id);
  }

  /** The agent's recent output, for error messages. */
  recentOutput(): string {
    return this.transport.recentOutput();
  }

  /**
   * Ends the session: rejects queued turns, kills every process of the tree, reports the end. Idempotent: every
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
      // The agent exited by itself: let its last output be processed first, it often says why.
      await this.transport.drain().catch(() => undefined);
      if (reason === 'spawn_failed' && !this.fatalMessage) {
        this.fatalMessage =
          this.transport.diagnoseExit(this.exitInfo.exitCode) ??
          `The agent exited with code ${this.exitInfo.exitCode} before it was ready.`;
      }
    }
    clearTimeout(this.spawnTimer);
    // Read before the transport lets go of the turn: the agent's last words often came just before it died.
    if (this.current) this.cutOffText = this.transport.partial();
    this.transport.abort();
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
      const known = this.proc.startTime !== undefined;
      kill = await killTree(this.treeTarget(), {
        graceMs: o.killGraceMs,
        table: o.table,
        known: this.members,
        // In a sandbox: bwrap only gets SIGKILL, and the agent's first process its SIGTERM last (its exit ends
        // the namespace, which would cut short the grace of what it started).
        ...(this.proc.sandbox && {
          spareOnTerm: this.proc.sandbox.infra,
          ...(known && { termLast: { pid: this.proc.pid, startTime: this.proc.startTime! } }),
        }),
      });
      // The exit event carries the exit status; it follows the kill closely.
      await this.waitForExit(1000);
    }
    const forced = await this.forcedKill?.catch(() => undefined);
    if (forced && forced.pids.length > 0) {
      const pids = [...new Set([...kill.pids, ...forced.pids])];
      kill = { ...kill, signal: 'SIGKILL', forced: true, pids };
    }
    for (const d of this.disposables) d.dispose();
    this.disposables = [];
    this.transport.dispose();
    if (kill.survivors.length > 0)
      this.log.error({ survivors: kill.survivors }, 'processes survived the tree kill');
    const result: CloseResult = {
      reason,
      kill,
      exitCode: this.exitInfo?.exitCode,
      exitSignal: this.exitInfo?.signal,
      lastOutput,
    };
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

  /**
   * Last resort (a second shutdown signal, a missed deadline): SIGKILL the whole tree now, without the grace. A
   * close under way then records SIGKILL and `forced`, as it was.
   */
  forceKill(): Promise<KillResult> {
    this.forcedKill ??= killTree(this.treeTarget(), {
      graceMs: 0,
      table: this.opts.table,
      known: this.members,
    });
    return this.forcedKill;
  }

  /**
   * The tree to kill. Without the root's start time the root cannot be verified: the marker alone claims processes
   * (pid 0), which still reaches every descendant that kept it.
   */
  private treeTarget(): { pid: number; startTime: number; marker: string } {
    const known = this.proc?.startTime !== undefined;
    return { pid: known ? this.proc!.pid : 0, startTime: this.proc?.startTime ?? -1, marker: this.marker };
  }

  /** What to tell the user about the end: the failure message, then the agent's last lines. */
  private lastWords(): string {
    const out = this.transport.recentOutput();
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

  /** The transport's view of the session: every report lands in one of these. */
  private sink(): TransportSink {
    return {
      log: this.log,
      now: this.now,
      output: () => {
        const t = this.now();
        this.lastOutputAt = t;
        this.lastActivityAt = t;
      },
      ready: (info) => this.becomeReady(info),
      fatal: (message) => {
        this.fatalMessage = message;
      },
      turnProgress: () => {
        if (this._state === 'busy' && this.current && !this.closing) this.emit('activity');
      },
      turnEnd: (end) => this.finishTurn(end),
      permission: (request) => {
        if (this.closing) return;
        this.emit('permission', request);
      },
      permissionResolved: (requestId, optionId) => this.emit('permissionResolved', { requestId, optionId }),
      tool: (info) => {
        if (this.current && !this.closing) this.emit('tool', { ...info, turnId: this.current.turnId });
      },
      usage: (usage) => {
        if (!this.current || this.closing) return;
        this.current.usage = { ...this.current.usage, ...usage };
        this.emit('usage', { ...usage, turnId: this.current.turnId });
      },
      choices: (change) => this.emit('choices', change),
      respawn: () => void this.respawn(),
      failed: (message) => {
        if (this.closing) return;
        this.fatalMessage = message;
        this.log.warn({ message }, 'transport failed');
        void this.close(this._state === 'starting' ? 'spawn_failed' : 'crashed');
      },
    };
  }

  private becomeReady(info: ReadyInfo): void {
    if (this._state !== 'starting' || this.closing) return;
    clearTimeout(this.spawnTimer);
    const ms = this.now() - this.startedAt;
    this.log.debug({ ms }, 'agent ready');
    if (info.resumed) {
      this._resumeOutcome = info.resumed;
      this.emit('resumed', info.resumed);
    }
    this.snapshotMembers();
    this.emit('ready', { ms });
    this.setState('idle');
    this.resolveReady();
    this.startNextTurn();
  }

  private startNextTurn(): void {
    if (this.closing || this.current) return;
    const next = this.queue.shift();
    if (!next || !this.proc) return;
    const turnId = ++this.turnCounter;
    this.current = { ...next, turnId, startedAt: this.now() };
    this.setState('busy');
    next.hooks.onStart?.(turnId);
    this.emit('turnStart', { turnId, text: next.input.text });
    this.transport.beginTurn(turnId, next.input);
  }

  private finishTurn(end: TurnEnd): void {
    const turn = this.current;
    if (!turn || this.closing) return;
    this.current = undefined;
    const usage = end.usage ?? turn.usage;
    const result: TurnResult = {
      turnId: turn.turnId,
      text: end.text,
      durationMs: this.now() - turn.startedAt,
      stopReason: end.stopReason,
      cancelled: end.stopReason === 'cancelled',
      tools: end.tools,
      ...(usage !== undefined && { usage }),
    };
    this.snapshotMembers();
    this.setState('idle');
    this.emit('turnEnd', result);
    turn.resolve(result);
    this.startNextTurn();
  }

  /** Remembers the tree while its root is alive and verified (one /proc pass; at ready and after each turn). */
  private snapshotMembers(): void {
    const proc = this.proc;
    if (!proc || proc.startTime === undefined) return;
    const t = this.opts.table;
    // A scan up to SNAPSHOT_SCAN_AGE_MS old serves: many turns ending together share one /proc pass instead of one
    // each (200 sessions stalled the loop for seconds). Still safe: the root must be in that scan, a child born
    // since is caught by the next snapshot or the marker sweep, and the kill verifies every pid's start time.
    const members = indexOf(t.scan(t.timestamp() - SNAPSHOT_SCAN_AGE_MS)).members({
      pid: proc.pid,
      startTime: proc.startTime,
      marker: this.marker,
    });
    // Only a scan that still saw the root alive proves the others are ours.
    if (!members.some((m) => m.pid === proc.pid && m.startTime === proc.startTime)) return;
    this.members = members.slice(0, 10_000).map((m) => ({ pid: m.pid, startTime: m.startTime }));
  }

  private onExit(proc: AgentProcess, exitCode: number, signal: number | undefined): void {
    if (proc !== this.proc) return;
    if (!this.closing && this._state === 'starting' && this.transport.exitedBeforeReady?.(exitCode)) {
      this.log.info({ exitCode, signal }, 'agent exited while resuming; starting a fresh one');
      void this.respawn();
      return;
    }
    this.exitInfo = { exitCode, signal };
    for (const w of this.exitWaiters) w();
    this.exitWaiters = [];
    if (this.closing) return;
    const reason: EndReason = this._state === 'starting' ? 'spawn_failed' : 'crashed';
    this.log.warn({ exitCode, signal, reason }, 'agent exited by itself');
    // Closing at once (not after the last output is processed) so that nobody is handed a dead session meanwhile;
    // doClose waits for the last output before it tells anyone why.
    void this.close(reason);
  }
}
