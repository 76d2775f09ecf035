import type { SinkButton, ThreadSink } from '../../src/discord/ThreadSink.js';

export interface SinkCall {
  readonly op: 'send' | 'edit';
  readonly at: number;
  readonly messageId: string;
  readonly content: string;
  readonly buttons: readonly SinkButton[] | undefined;
}

/** A ThreadSink that records every post and edit with the (possibly faked) performance clock. */
export class RecordingSink implements ThreadSink {
  readonly threadId: string;
  readonly calls: SinkCall[] = [];
  readonly messages = new Map<string, { content: string; buttons: readonly SinkButton[] | undefined }>();
  private next = 1;

  constructor(threadId = '100000000000000001') {
    this.threadId = threadId;
  }

  async send(content: string, buttons?: readonly SinkButton[]): Promise<string> {
    const messageId = String(this.next++);
    this.messages.set(messageId, { content, buttons });
    this.calls.push({ op: 'send', at: performance.now(), messageId, content, buttons });
    return messageId;
  }

  async edit(messageId: string, content: string, buttons?: readonly SinkButton[]): Promise<boolean> {
    const m = this.messages.get(messageId);
    if (!m) return false;
    m.content = content;
    if (buttons !== undefined) m.buttons = buttons;
    this.calls.push({ op: 'edit', at: performance.now(), messageId, content, buttons });
    return true;
  }

  async typing(): Promise<void> {}
  async react(): Promise<void> {}
  async unreact(): Promise<void> {}
}
