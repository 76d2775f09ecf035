/** A button under a bot message. */
export interface SinkButton {
  readonly customId: string;
  readonly label: string;
  readonly style: 'primary' | 'secondary' | 'success' | 'danger';
}

/**
 * What a reply needs from one Discord thread. The discord.js implementation lives in DiscordThreadSink; tests of
 * the streaming logic use a recorder. Every method resolves (errors are logged by the implementation) so a Discord
 * failure never breaks a session.
 */
export interface ThreadSink {
  readonly threadId: string;
  /** Posts a message; resolves to its id, or undefined when it was not posted (archived, deleted, failed). */
  send(content: string, buttons?: readonly SinkButton[]): Promise<string | undefined>;
  edit(messageId: string, content: string, buttons?: readonly SinkButton[]): Promise<boolean>;
  typing(): Promise<void>;
  react(messageId: string, emoji: string): Promise<void>;
  unreact(messageId: string, emoji: string): Promise<void>;
}
