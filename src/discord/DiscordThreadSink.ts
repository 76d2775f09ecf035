import { type REST, Routes } from 'discord.js';
import type { Logger } from '../log/logger.js';
import { NO_MENTIONS } from './noMentions.js';
import type { SinkButton, ThreadSink } from './ThreadSink.js';

const STYLE = { primary: 1, secondary: 2, success: 3, danger: 4 } as const;

function components(buttons: readonly SinkButton[] | undefined) {
  if (buttons === undefined) return undefined;
  if (buttons.length === 0) return [];
  // Discord takes at most 5 buttons per action row.
  const rows = [];
  for (let i = 0; i < buttons.length; i += 5) {
    rows.push({
      type: 1,
      components: buttons.slice(i, i + 5).map((b) => ({
        type: 2,
        custom_id: b.customId,
        label: b.label,
        style: STYLE[b.style],
      })),
    });
  }
  return rows;
}

/**
 * A ThreadSink over discord.js's REST client. Never posts into a thread it knows is archived or deleted (posting
 * would reopen it), and turns every Discord error into a log line and a falsy result.
 */
export class DiscordThreadSink implements ThreadSink {
  readonly threadId: string;
  private readonly rest: REST;
  private readonly log: Logger;
  private readonly isClosed: () => boolean;

  constructor(threadId: string, rest: REST, logger: Logger, isClosed: () => boolean) {
    this.threadId = threadId;
    this.rest = rest;
    this.log = logger.child({ threadId });
    this.isClosed = isClosed;
  }

  async send(content: string, buttons?: readonly SinkButton[]): Promise<string | undefined> {
    if (this.isClosed()) return undefined;
    try {
      const body = { content, allowed_mentions: NO_MENTIONS, components: components(buttons) };
      const msg = (await this.rest.post(Routes.channelMessages(this.threadId), { body })) as { id: string };
      return msg.id;
    } catch (err) {
      this.log.warn({ err }, 'could not post to the thread');
      return undefined;
    }
  }

  async edit(messageId: string, content: string, buttons?: readonly SinkButton[]): Promise<boolean> {
    if (this.isClosed()) return false;
    try {
      const body = { content, allowed_mentions: NO_MENTIONS, components: components(buttons) };
      await this.rest.patch(Routes.channelMessage(this.threadId, messageId), { body });
      return true;
    } catch (err) {
      this.log.warn({ err, messageId }, 'could not edit a message');
      return false;
    }
  }

  async typing(): Promise<void> {
    if (this.isClosed()) return;
    try {
      await this.rest.post(Routes.channelTyping(this.threadId));
    } catch (err) {
      this.log.debug({ err }, 'typing indicator failed');
    }
  }

  async react(messageId: string, emoji: string): Promise<void> {
    if (this.isClosed()) return;
    try {
      await this.rest.put(
        Routes.channelMessageOwnReaction(this.threadId, messageId, encodeURIComponent(emoji)),
      );
    } catch (err) {
      this.log.debug({ err, emoji }, 'reaction failed');
    }
  }

  async unreact(messageId: string, emoji: string): Promise<void> {
    if (this.isClosed()) return;
    try {
      await this.rest.delete(
        Routes.channelMessageOwnReaction(this.threadId, messageId, encodeURIComponent(emoji)),
      );
    } catch (err) {
      this.log.debug({ err, emoji }, 'removing a reaction failed');
    }
  }
}
