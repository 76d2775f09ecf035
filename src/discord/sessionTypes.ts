// The session types the Discord side renders (INTERFACE.md), from the agent layer.
export type {
  Choice,
  Choices,
  PermissionOption,
  PermissionRequest,
  PromptInput,
  SavedAttachment,
  StopReason,
  ToolCallInfo,
  TurnUsage,
} from '../agent/types.js';
