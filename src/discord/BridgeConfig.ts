import type { Config } from '../config/Config.js';

/** The configuration the Discord side reads. */
export type BridgeConfig = Pick<
  Config,
  | 'discordToken'
  | 'discordApiBase'
  | 'discordGuildId'
  | 'allowedUserIds'
  | 'allowedRoleIds'
  | 'allowedChannelIds'
  | 'sessionIdleTtlMs'
  | 'maxCpuPercent'
  | 'maxMemoryMb'
  | 'maxStuckMs'
  | 'usageFooter'
  | 'attachmentMaxBytes'
  | 'attachmentMaxMessageBytes'
>;
