import { ReplyStream, type ReplyStreamOptions } from './ReplyStream.js';
import type { StopReason, ToolCallInfo, TurnUsage } from './sessionTypes.js';
import { stopReasonNote } from './stopReasonNote.js';
import type { ThreadSink } from './ThreadSink.js';
import { ToolCallLines } from './ToolCallLines.js';
import { usageFooter } from './usageFooter.js';

export interface TurnViewOptions {
  /** Options of the streaming reply (its edit interval is also the tool lines' one). */
  readonly reply: ReplyStreamOptions;
  /** Show the usage footer under the final reply (USAGE_FOOTER). */
  readonly usageFooter: boolean;
}

/** What the end of a turn brings to its view. */
export interface TurnEnd {
  readonly text: string;
  readonly stopReason: StopReason;
  readonly usage?: TurnUsage | undefined;
}

/**
 * What a thread shows of one turn: the streaming reply (ReplyStream), one status message for its tool calls
 * (ToolCallLines), and at the end the final text with a plain note for an unusual ending and the usage footer.
 * Only reply text is streamed: thought chunks never reach `read()` (the transport keeps them out of partial()).
 */
export class TurnView {
  private readonly reply: ReplyStream;
  private readonly tools: ToolCallLines;
  private readonly footer: boolean;

  constructor(sink: ThreadSink, read: () => string, options: TurnViewOptions) {
    this.reply = new ReplyStream(sink, read, options.reply);
    this.tools = new ToolCallLines(sink, {
      ...(options.reply.editIntervalMs !== undefined && { editIntervalMs: options.reply.editIntervalMs }),
      ...(options.reply.now !== undefined && { now: options.reply.now }),
    });
    this.footer = options.usageFooter;
  }

  /** Reply text arrived. */
  text(): void {
    this.reply.update();
  }

  /** A tool call started or changed. */
  tool(info: ToolCallInfo): void {
    this.tools.update(info);
  }

  /** The turn ended: tool lines get their final status, the reply its final text, note and footer. */
  async finish(end: TurnEnd): Promise<void> {
    const note = [stopReasonNote(end.stopReason), this.footer ? usageFooter(end.usage) : undefined]
      .filter((n): n is string => n !== undefined)
      .join('\n');
    await Promise.all([this.tools.finish(), this.reply.finish(end.text, note === '' ? undefined : note)]);
  }

  /** The session ended under the turn. */
  async abort(note: string): Promise<void> {
    this.tools.close();
    await this.reply.abort(note);
  }
}
