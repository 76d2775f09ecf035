import { EditPacer } from './EditPacer.js';
import type { ToolCallInfo } from './sessionTypes.js';
import type { ThreadSink } from './ThreadSink.js';

export interface ToolCallLinesOptions {
  /** Minimum time between two edits of the status message, ms (Discord: 1.5 s). */
  readonly editIntervalMs?: number;
  /** Lines shown at most; older calls fold into a count (a tool storm must not outgrow one message). */
  readonly maxLines?: number;
  /** Characters of one title at most. */
  readonly maxTitle?: number;
  /** A message is edited this long at most, then the lines continue in a new one (Discord's one-hour edit limit). */
  readonly maxMessageAgeMs?: number;
  /** Wall clock for a message's age (Discord's edit limit runs on it), ms. Default Date.now. */
  readonly now?: () => number;
}

const ICON: Record<ToolCallInfo['status'], string> = {
  pending: '⏳',
  in_progress: '⚙️',
  completed: '✅',
  failed: '❌',
};

const WORD: Record<ToolCallInfo['status'], string> = {
  pending: 'waiting',
  in_progress: 'running',
  completed: 'done',
  failed: 'failed',
};

/** A title on one line, without anything that could open a code span or a heading. */
function oneLine(title: string, max: number): string {
  const flat = title
    .replace(/[\r\n\t]+/g, ' ')
    .replaceAll('`', "'")
    .trim();
  const text = flat === '' ? '(untitled tool call)' : flat;
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/**
 * One status message per turn listing the agent's tool calls, one line each with its title and latest status,
 * edited in place at most every `editIntervalMs`. `update()` is cheap to call on every tool event.
 */
export class ToolCallLines {
  private readonly sink: ThreadSink;
  private readonly pacer: EditPacer;
  private readonly maxLines: number;
  private readonly maxTitle: number;
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private readonly calls = new Map<string, { title: string; status: ToolCallInfo['status'] }>();
  private messageId: string | undefined;
  private postedAt = 0;
  /** Calls folded into earlier messages (after a roll-over), not shown again. */
  private readonly retired = new Set<string>();
  private shown = '';
  private done = false;

  constructor(sink: ThreadSink, options: ToolCallLinesOptions = {}) {
    this.sink = sink;
    this.pacer = new EditPacer(options.editIntervalMs ?? 1500, () => this.refresh());
    this.maxLines = options.maxLines ?? 15;
    this.maxTitle = options.maxTitle ?? 100;
    this.maxAgeMs = options.maxMessageAgeMs ?? 50 * 60_000;
    this.now = options.now ?? Date.now;
  }

  /** Number of distinct tool calls seen this turn. */
  get count(): number {
    return this.calls.size;
  }

  /** A tool call started or changed: remember its latest title and status, schedule a refresh. */
  update(tool: ToolCallInfo): void {
    if (this.done) return;
    const known = this.calls.get(tool.id);
    // A later update may carry no title (ACP tool_call_update); keep the first one.
    const title = tool.title.trim() !== '' ? tool.title : (known?.title ?? '');
    this.calls.set(tool.id, { title, status: tool.status });
    this.pacer.poke();
  }

  /** The message body for the calls not yet retired. Always under 2000 characters. */
  render(): string {
    const live = [...this.calls].filter(([id]) => !this.retired.has(id));
    const lines = live
      .slice(-this.maxLines)
      .map(([, c]) => `${ICON[c.status]} ${oneLine(c.title, this.maxTitle)} · ${WORD[c.status]}`);
    const hidden = live.length - lines.length;
    const head = `-# 🔧 tool calls: ${this.calls.size}${hidden > 0 ? ` (${hidden} earlier not shown)` : ''}`;
    return [head, ...lines].join('\n');
  }

  private async refresh(): Promise<void> {
    if (this.calls.size === 0) return;
    if (this.messageId !== undefined && this.now() - this.postedAt > this.maxAgeMs) {
      // Edits stop working after an hour: freeze the old message and continue in a new one.
      for (const id of this.calls.keys()) {
        const c = this.calls.get(id);
        if (c && (c.status === 'completed' || c.status === 'failed')) this.retired.add(id);
      }
      this.messageId = undefined;
      this.shown = '';
    }
    const content = this.render();
    if (content === this.shown) return;
    this.pacer.edited();
    this.shown = content;
    if (this.messageId === undefined) {
      this.postedAt = this.now();
      this.messageId = await this.sink.send(content);
    } else await this.sink.edit(this.messageId, content);
  }

  /** The turn ended: show every call's final status now (one last edit when something changed), stop. */
  async finish(): Promise<void> {
    if (this.done) return this.pacer.settled;
    this.done = true;
    this.pacer.stop();
    const wait = this.pacer.wait;
    // The last edit keeps the edit interval too.
    if (wait > 0 && this.messageId !== undefined && this.render() !== this.shown)
      await new Promise<void>((resolve) => setTimeout(resolve, wait).unref());
    await this.pacer.run(() => this.refresh());
  }

  /** Stops without a last edit (the thread is gone or the session ended). */
  close(): void {
    this.done = true;
    this.pacer.stop();
  }
}
