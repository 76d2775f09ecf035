import type { EndReason } from '../endReasons.js';
import type { KillResult } from '../process/killTree.js';

export type SessionState = 'starting' | 'idle' | 'busy' | 'closing' | 'closed';

/** How the bot talks to the agent: JSON-RPC on stdio (ACP) or the classic line UI in a pty. */
export type AgentProtocol = 'acp' | 'classic';

/** Why a turn ended (ACP's stopReason; the classic transport says end_turn or cancelled). */
export type StopReason = 'end_turn' | 'cancelled' | 'max_tokens' | 'max_turn_requests' | 'refusal';

/** A file of a Discord message, already saved in the thread's workspace. */
export interface SavedAttachment {
  readonly path: string;
  readonly name: string;
  readonly mimeType: string;
  readonly size: number;
}

/** One user message for the agent. */
export interface PromptInput {
  /** The user's text, already stripped of the bot mention. May be empty when attachments are present. */
  readonly text: string;
  readonly attachments?: readonly SavedAttachment[];
}

export type ToolStatus = 'pending' | 'in_progress' | 'completed' | 'failed';

export interface ToolCallInfo {
  readonly id: string;
  readonly title: string;
  readonly status: ToolStatus;
}

/** `_kiro.dev/metadata` of one turn. */
export interface TurnUsage {
  readonly credits?: number;
  readonly contextPercent?: number;
  readonly durationMs?: number;
}

export type PermissionKind = 'allow_once' | 'allow_always' | 'reject_once' | 'reject_always';

export interface PermissionOption {
  readonly optionId: string;
  readonly name: string;
  readonly kind: PermissionKind;
}

/** A question the agent waits on; answer it with `answerPermission(requestId, optionId)`. */
export interface PermissionRequest {
  readonly requestId: string;
  readonly turnId: number;
  readonly title: string;
  readonly options: readonly PermissionOption[];
}

export interface TurnResult {
  readonly turnId: number;
  readonly text: string;
  readonly durationMs: number;
  readonly stopReason: StopReason;
  /** True when the turn was cancelled (/cancel) before the agent finished. */
  readonly cancelled: boolean;
  /** Every tool call of the turn, in the order they started, with its last status. */
  readonly tools: readonly ToolCallInfo[];
  readonly usage?: TurnUsage;
}

export interface CloseResult {
  readonly reason: EndReason;
  readonly kill: KillResult;
  readonly exitCode: number | undefined;
  readonly exitSignal: number | undefined;
  /** The agent's last lines (or the failure message), for telling the user what happened. */
  readonly lastOutput: string;
}

/** A model or mode the agent offers. */
export interface Choice {
  readonly id: string;
  readonly name: string;
  readonly description?: string;
}

export interface Choices {
  readonly current?: string;
  readonly available: readonly Choice[];
}

export interface PromptCapabilities {
  readonly image: boolean;
}

/** The outcome of trying to continue the thread's earlier conversation. */
export interface ResumeOutcome {
  readonly restored: boolean;
  /** Why it was not restored (error text, timeout, exit). */
  readonly reason?: string;
}
