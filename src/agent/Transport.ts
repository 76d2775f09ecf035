import type { Logger } from '../log/logger.js';
import type { AgentProcess, SpawnMode } from '../process/spawnAgent.js';
import type {
  AgentProtocol,
  Choices,
  PermissionRequest,
  PromptCapabilities,
  PromptInput,
  ResumeOutcome,
  StopReason,
  ToolCallInfo,
  TurnUsage,
} from './types.js';

/** How a transport's turn ended; the session adds the turn id and duration. */
export interface TurnEnd {
  readonly text: string;
  readonly stopReason: StopReason;
  readonly tools: readonly ToolCallInfo[];
  readonly usage?: TurnUsage;
}

/** What a transport knows once the agent is ready for its first turn. */
export interface ReadyInfo {
  /** ACP session id. */
  readonly agentSessionId?: string;
  readonly models?: Choices;
  readonly modes?: Choices;
  readonly promptCapabilities?: PromptCapabilities;
  /** Set when the session tried to continue an earlier conversation. */
  readonly resumed?: ResumeOutcome;
}

/**
 * The session side of a transport: everything a transport reports goes through here, so the session owns every
 * state change, event and timer and the transport owns only the conversation.
 */
export interface TransportSink {
  readonly log: Logger;
  now(): number;
  /** Any agent output (the idle clock and LRU recency). */
  output(): void;
  /** The agent can take its first turn. */
  ready(info: ReadyInfo): void;
  /** What to tell the user when the start fails (set before ready; the last call wins). */
  fatal(message: string): void;
  /** The running turn progressed (reply text, tool call): listeners read `partial()`. */
  turnProgress(): void;
  /** The running turn ended. */
  turnEnd(end: TurnEnd): void;
  /** The agent asks a question; the transport keeps it open until answered, expired or the session closes. */
  permission(request: PermissionRequest): void;
  permissionResolved(requestId: string, optionId: string | 'cancelled'): void;
  tool(info: ToolCallInfo): void;
  usage(usage: TurnUsage): void;
  /** The agent accepted a model or mode switch. */
  choices(change: { kind: 'model' | 'mode'; id: string }): void;
  /** The agent broke the protocol beyond recovery: end the session (`crashed`) telling the user this. */
  failed(message: string): void;
  /**
   * Before ready only: kill this process's tree and attach a fresh process (ACP: a session/load that hung). The
   * spawn timeout starts again for the new process.
   */
  respawn(): void;
}

/** The conversation with one agent process; one implementation per protocol. */
export interface Transport {
  readonly protocol: AgentProtocol;
  /** How the agent's stdio must be wired. */
  readonly mode: SpawnMode;
  readonly cols?: number;
  readonly rows?: number;
  /** Arguments appended to the configured ones (trust flags, classic resume flag). */
  extraArgs(): readonly string[];
  /** Before the spawn, in the created working directory (classic: writes the workspace settings file). */
  prepare?(cwd: string): void;
  /** Starts talking to the freshly spawned process (handshake for ACP, screen reading for classic). */
  attach(proc: AgentProcess, sink: TransportSink): void;
  /** Sends a turn; the transport answers with `sink.turnEnd` (or the session closes). */
  beginTurn(turnId: number, input: PromptInput): void;
  /** The running turn's reply text so far. */
  partial(): string;
  /** Asks the agent to stop the running turn; false when it cannot. */
  cancel(): boolean;
  readonly pendingPermission: PermissionRequest | undefined;
  answerPermission(requestId: string, optionId: string): boolean;
  readonly agentSessionId: string | undefined;
  models(): Choices | undefined;
  modes(): Choices | undefined;
  readonly promptCapabilities: PromptCapabilities;
  setModel(id: string): Promise<void>;
  setMode(id: string): Promise<void>;
  /** The agent's recent output and log lines, for error reports. */
  recentOutput(): string;
  /** Resolves when output already received has been processed (so an exit report sees the last words). */
  drain(): Promise<void>;
  /** After an exit before ready: true when the transport wants a fresh process instead of failing (ACP load). */
  exitedBeforeReady?(exitCode: number): boolean;
  /** After an exit before ready: why, judged from the output, if the transport can tell. */
  diagnoseExit(exitCode: number): string | undefined;
  /** Message for a start that took longer than the spawn timeout. */
  timeoutMessage(ms: number): string;
  /** The session is closing: answer open questions `cancelled`, stop timers. Called before the kill. */
  abort(): void;
  /** Releases everything; called once after the process is gone. */
  dispose(): void;
}
