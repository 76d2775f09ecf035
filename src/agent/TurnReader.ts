import xterm from '@xterm/headless';
import type { AgentProfile } from './AgentProfile.js';

const { Terminal } = xterm;
type TerminalT = InstanceType<typeof Terminal>;

export interface TurnReaderOptions {
  readonly cols?: number;
  readonly rows?: number;
  /** Reply text kept per turn; beyond it the middle is replaced by a note, so a flood cannot grow memory. */
  readonly maxTurnChars?: number;
  /** Lines of recent output kept for error reports (crash, spawn failure). */
  readonly tailLines?: number;
}

/** What the screen shows after a write was parsed. */
export type ScreenState =
  | { readonly kind: 'prompt' }
  | { readonly kind: 'permission'; readonly text: string }
  | { readonly kind: 'output' };

/**
 * Renders agent output through a headless terminal and cuts it into turns. Completed lines are harvested on every
 * line feed (so the terminal keeps almost no scrollback), echoed input is skipped, chrome lines are dropped and the
 * reply is capped at `maxTurnChars`.
 */
export class TurnReader {
  private readonly term: TerminalT;
  private readonly profile: AgentProfile;
  private readonly maxTurnChars: number;
  private readonly tailLimit: number;
  private readonly tail: string[] = [];
  private head: string[] = [];
  private headChars = 0;
  private overflow: string[] = [];
  private overflowChars = 0;
  private omittedLines = 0;
  private skipLines = 0;
  private inTurn = false;
  private disposed = false;
  /** Bytes the terminal wants sent back to the program (answers to cursor-position queries). */
  onReply: ((data: string) => void) | undefined;

  constructor(profile: AgentProfile, options: TurnReaderOptions = {}) {
    this.profile = profile;
    this.maxTurnChars = options.maxTurnChars ?? 200_000;
    this.tailLimit = options.tailLines ?? 20;
    this.term = new Terminal({
      cols: options.cols ?? 200,
      rows: options.rows ?? 50,
      scrollback: 50,
      allowProposedApi: true,
      convertEol: false,
    });
    this.term.onLineFeed(() => this.harvest());
    this.term.onData((data) => this.onReply?.(data));
  }

  get cols(): number {
    return this.term.cols;
  }

  get rows(): number {
    return this.term.rows;
  }

  /** Feeds output; resolves once it is parsed, with what the screen now shows. */
  write(data: string): Promise<ScreenState> {
    return new Promise((resolve) => {
      if (this.disposed) return resolve({ kind: 'output' });
      this.term.write(data, () => resolve(this.screenState()));
    });
  }

  /** Starts collecting a turn; the next `echoLines` completed lines are the agent echoing our input. */
  beginTurn(echoLines: number): void {
    this.head = [];
    this.headChars = 0;
    this.overflow = [];
    this.overflowChars = 0;
    this.omittedLines = 0;
    this.skipLines = this.profile.echoesInput ? echoLines : 0;
    this.inTurn = true;
  }

  /** Input typed mid-turn (a permission answer) is echoed too; skip it. */
  skipEcho(lines: number): void {
    if (this.profile.echoesInput) this.skipLines += lines;
  }

  /** True once the echo of the input is behind us, so a prompt on screen is the agent's answer. */
  get echoDone(): boolean {
    return this.skipLines === 0;
  }

  /** The reply so far, including the line being drawn, for streaming. */
  partial(): string {
    // Until the echo of our input is behind us, the cursor line is our own text, not the agent's.
    if (this.skipLines > 0) return trimBlankLines(this.collected()).join('\n');
    const current = this.logicalLineAt(this.cursorRow());
    const lines = this.collected();
    const cur = this.clean(current.text, current.prefixed);
    if (cur !== undefined && !this.isPrompt(current)) lines.push(cur);
    return trimBlankLines(lines).join('\n');
  }

  /** Ends the turn and returns its reply text. */
  endTurn(): string {
    const text = trimBlankLines(this.collected()).join('\n');
    this.inTurn = false;
    this.head = [];
    this.overflow = [];
    this.headChars = 0;
    this.overflowChars = 0;
    return text;
  }

  /** Whether the last non-blank line on screen is a prompt (the quiet-period fallback's test). */
  promptVisible(): boolean {
    const buffer = this.term.buffer.active;
    for (let row = this.cursorRow(); row >= Math.max(0, this.cursorRow() - this.term.rows); row--) {
      const line = buffer.getLine(row)?.translateToString(true) ?? '';
      if (line.trim() !== '') return this.isPrompt(this.logicalLineAt(row));
    }
    return false;
  }

  /** The last lines of output, whatever the turn, for telling a user why the agent failed. */
  recentOutput(): string {
    const current = this.logicalLineAt(this.cursorRow()).text.trimEnd();
    return trimBlankLines(current ? [...this.tail, current] : [...this.tail]).join('\n');
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.term.dispose();
  }

  private collected(): string[] {
    if (this.omittedLines === 0) return [...this.head, ...this.overflow];
    return [...this.head, `… [${this.omittedLines} lines of output omitted] …`, ...this.overflow];
  }

  /** A prompt, not a reply line that starts the same way: kiro's bare prompt `> ` and its green reply prefix `> `
   * differ only in colour. */
  private isPrompt(line: { text: string; prefixed: boolean }): boolean {
    return !line.prefixed && this.profile.prompt.test(line.text);
  }

  private screenState(): ScreenState {
    if (!this.isPrompt(this.logicalLineAt(this.cursorRow()))) return { kind: 'output' };
    const buffer = this.term.buffer.active;
    // The permission question sits a few rows above the prompt that follows it.
    for (let row = this.cursorRow() - 1; row >= Math.max(0, this.cursorRow() - 4); row--) {
      const line = buffer.getLine(row)?.translateToString(true) ?? '';
      if (this.profile.permission.test(line)) return { kind: 'permission', text: line.trim() };
      if (line.trim() !== '' && !this.profile.prompt.test(line)) break;
    }
    return { kind: 'prompt' };
  }

  private cursorRow(): number {
    const b = this.term.buffer.active;
    return b.baseY + b.cursorY;
  }

  /** The whole logical line (joining soft-wrapped rows) that ends at `row`. */
  private logicalLineAt(row: number): { text: string; prefixed: boolean } {
    const buffer = this.term.buffer.active;
    let start = row;
    while (start > 0 && buffer.getLine(start)?.isWrapped) start--;
    let text = '';
    for (let r = start; r <= row; r++) text += buffer.getLine(r)?.translateToString(r === row) ?? '';
    const first = buffer.getLine(start)?.getCell(0);
    const color = this.profile.replyPrefixColor;
    const prefixed = color !== undefined && first?.isFgPalette() === true && first.getFgColor() === color;
    return { text, prefixed };
  }

  private harvest(): void {
    const { text, prefixed } = this.logicalLineAt(this.cursorRow() - 1);
    const line = text.trimEnd();
    this.tail.push(line);
    if (this.tail.length > this.tailLimit) this.tail.shift();
    if (!this.inTurn) return;
    if (this.skipLines > 0) {
      this.skipLines--;
      return;
    }
    const cleaned = this.clean(line, prefixed);
    if (cleaned === undefined) return;
    this.keep(cleaned);
  }

  /** Drops chrome lines and the reply prefix; undefined means "not part of the reply". */
  private clean(line: string, prefixed: boolean): string | undefined {
    if (this.profile.noise.some((re) => re.test(line))) return undefined;
    if (this.profile.permission.test(line)) return undefined;
    // A prompt that scrolled up (the cursor moved past it) is chrome too.
    if (this.isPrompt({ text: line, prefixed })) return undefined;
    if (prefixed && line.startsWith(this.profile.replyPrefix))
      return line.slice(this.profile.replyPrefix.length);
    return line;
  }

  private keep(line: string): void {
    const half = this.maxTurnChars / 2;
    if (this.headChars + line.length + 1 <= half && this.overflow.length === 0) {
      this.head.push(line);
      this.headChars += line.length + 1;
      return;
    }
    this.overflow.push(line);
    this.overflowChars += line.length + 1;
    while (this.overflowChars > half && this.overflow.length > 1) {
      this.overflowChars -= this.overflow.shift()!.length + 1;
      this.omittedLines++;
    }
  }
}

/** Drops leading and trailing blank lines and folds runs of blank lines into one. */
function trimBlankLines(lines: string[]): string[] {
  const out: string[] = [];
  for (const raw of lines) {
    const line = raw.trimEnd();
    if (line === '' && (out.length === 0 || out[out.length - 1] === '')) continue;
    out.push(line);
  }
  while (out.length > 0 && out[out.length - 1] === '') out.pop();
  return out;
}
