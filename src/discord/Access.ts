import type { Config } from '../config/Config.js';

/** Who and where, as far as access is concerned. `parentId` is the thread's parent channel for thread messages. */
export interface AccessSubject {
  readonly userId: string;
  readonly roleIds: readonly string[];
  readonly channelId: string;
  readonly parentId?: string | null | undefined;
}

/**
 * The allowlist of CONTRACT.md: the channel (or a thread's parent) must be allowed, or the channel list empty;
 * the user must be listed or hold a listed role, or both of those lists empty.
 */
export class Access {
  private readonly users: ReadonlySet<string>;
  private readonly roles: ReadonlySet<string>;
  private readonly channels: ReadonlySet<string>;

  constructor(config: Pick<Config, 'allowedUserIds' | 'allowedRoleIds' | 'allowedChannelIds'>) {
    this.users = new Set(config.allowedUserIds);
    this.roles = new Set(config.allowedRoleIds);
    this.channels = new Set(config.allowedChannelIds);
  }

  channelAllowed(channelId: string, parentId?: string | null): boolean {
    if (this.channels.size === 0) return true;
    return this.channels.has(channelId) || (parentId != null && this.channels.has(parentId));
  }

  userAllowed(userId: string, roleIds: readonly string[]): boolean {
    if (this.users.size === 0 && this.roles.size === 0) return true;
    return this.users.has(userId) || roleIds.some((r) => this.roles.has(r));
  }

  allows(s: AccessSubject): boolean {
    return this.channelAllowed(s.channelId, s.parentId) && this.userAllowed(s.userId, s.roleIds);
  }
}
