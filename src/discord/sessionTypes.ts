// The session types of /work/coord/INTERFACE.md that the Discord side renders. Until acp-core's
// src/agent/types.ts lands they are declared here; then this file re-exports them from there.
export type StopReason = 'end_turn' | 'cancelled' | 'max_tokens' | 'max_turn_requests' | 'refusal';
export interface SavedAttachment {
  readonly path: string;
  readonly name: string;
  readonly mimeType: string;
  readonly size: number;
}
export interface PromptInput {
  readonly text: string;
  readonly attachments?: readonly SavedAttachment[];
}
export interface ToolCallInfo {
  readonly id: string;
  readonly title: string;
  readonly status: 'pending' | 'in_progress' | 'completed' | 'failed';
}
export interface TurnUsage {
  readonly credits?: number;
  readonly contextPercent?: number;
  readonly durationMs?: number;
}
export interface PermissionOption {
  readonly optionId: string;
  readonly name: string;
  readonly kind: 'allow_once' | 'allow_always' | 'reject_once' | 'reject_always';
}
export interface PermissionRequest {
  readonly requestId: string;
  readonly turnId: number;
  readonly title: string;
  readonly options: readonly PermissionOption[];
}
export interface Choice {
  readonly id: string;
  readonly name: string;
  readonly description?: string;
}
export interface Choices {
  readonly current?: string;
  readonly available: readonly Choice[];
}
