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

/**
 * What the screen shows after a write was parsed. `prompt`: the agent reads input (`matched`: the cursor line also
 * looks like the profile's prompt, the cross-check of the read marker).
 */
export type ScreenState = (
  | { readonly kind: 'prompt'; readonly matched: boolean }
  | { readonly kind: 'permission'; readonly text: string }
  | { readonly kind: 'output' }
) & {
  /** Reads opened and closed so far, when the state was taken (later bytes may be parsed before it is handled). */
  readonly at: ReadCount;
};

export interface ReadCount {
  readonly opens: number;
  readonly closes: number;
}

/** What the screen told about the turn's cost. */
export interface ScreenUsage {
  readonly credits?: number;
  readonly contextPercent?: number;
}

/**
 * Renders agent output through a headless terminal and cuts it into turns. The line editor's read marker
 * (bracketed paste on while it reads) says when the agent waits for input and where our typed input ends; completed
 * lines are harvested on every line feed (so the terminal keeps little scrollback), lines drawn during a read (the
 * prompt and the echo of what we typed) are skipped, chrome lines are dropped and the reply is capped.
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
  private inTurn = false;
  private disposed = false;
  /** A read is open: the marker was set and not yet reset. */
  private reading = false;
  /** Whether the agent ever set the marker (an agent without one is read by its prompt alone). */
  private markerSeen = false;
  private opens = 0;
  private closes = 0;
  /** `opens`/`closes` when our last input was typed: a later close, or a later read, means the agent took it. */
  private inputMark: ReadCount = { opens: 0, closes: 0 };
  /** The line feed that follows a read's close ends the echo line: not reply. */
  private skipNextLine = false;
  private credits: number | undefined;
  /** Bytes the terminal wants sent back to the program (answers to cursor-position queries). */
  onReply: ((data: string) => void) | undefined;

  constructor(profile: AgentProfile, options: TurnReaderOptions = {}) {
    this.profile = profile;
    this.maxTurnChars = options.maxTurnChars ?? 200_000;
    this.tailLimit = options.tailLines ?? 20;
    this.term = new Terminal({
      cols: options.cols ?? 200,
      rows: options.rows ?? 50,
      // Room for one long unwrapped paragraph: `-w never` leaves wrapping to this terminal, and the rows of one
      // logical line are joined back when its line feed comes.
      scrollback: 400,
      allowProposedApi: true,
      convertEol: false,
    });
    const marker = profile.readMarker;
    if (marker !== undefined) {
      // Seen in stream order, while the bytes before it are already on the screen; returning false lets the
      // terminal apply the mode too.
      const has = (params: (number | number[])[]) => params.some((p) => p === marker);
      this.term.parser.registerCsiHandler({ prefix: '?', final: 'h' }, (params) => {
        if (has(params) && !this.reading) {
          this.reading = true;
          this.markerSeen = true;
          this.opens++;
        }
        return false;
      });
      this.term.parser.registerCsiHandler({ prefix: '?', final: 'l' }, (params) => {
        // A reset without a set (a read drawn without its marker) still ends a read.
        if (has(params)) {
          this.reading = false;
          this.closes++;
          this.skipNextLine = true;
        }
        return false;
      });
    }
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
      if (this.disposed) return resolve({ kind: 'output', at: { opens: this.opens, closes: this.closes } });
      this.term.write(data, () => resolve(this.screenState()));
    });
  }

  /** Starts collecting a turn; call just before typing its input. */
  beginTurn(): void {
    this.head = [];
    this.headChars = 0;
    this.overflow = [];
    this.overflowChars = 0;
    this.omittedLines = 0;
    this.credits = undefined;
    this.inTurn = true;
    this.markInput();
  }

  /** Input is about to be typed at the open read (a turn, a permission answer). */
  markInput(): void {
    this.inputMark = { opens: this.opens, closes: this.closes };
  }

  /**
   * True once the agent took our last input (the read it was typed at closed, or a new one opened after a read
   * drawn without the marker), so a read on screen is its answer.
   * An agent without read markers: at once (its prompt then ends the turn, or the quiet period).
   */
  get echoDone(): boolean {
    return this.taken({ opens: this.opens, closes: this.closes });
  }

  /** `echoDone` as of a screen state: whether the read it shows comes after our last input was taken. */
  tookInput(screen: ScreenState): boolean {
    return this.taken(screen.at);
  }

  private taken(at: ReadCount): boolean {
    const m = this.inputMark;
    return !this.markerSeen || at.closes > m.closes || at.opens > m.opens;
  }

  /** Whether the agent waits for input at a read right now. */
  get awaitingInput(): boolean {
    return this.reading;
  }

  /** The reply so far, including the line being drawn, for streaming. */
  partial(): string {
    // During a read the cursor line is the prompt or our own text, not the agent's.
    if (!this.echoDone || this.reading) return trimBlankLines(this.collected()).join('\n');
    const current = this.logicalLineAt(this.cursorRow());
    const lines = this.collected();
    const cur = this.clean(current.text, current.prefixed);
    if (cur !== undefined && !this.isPrompt(current)) lines.push(cur);
    return trimBlankLines(lines).join('\n');
  }

  /** Credits from the turn's summary line, and the context use the prompt shows, when the screen has them. */
  usage(): ScreenUsage {
    const m = /(\d{1,3})%/.exec(this.promptText());
    return {
      ...(this.credits !== undefined && { credits: this.credits }),
      ...(m && { contextPercent: Number(m[1]) }),
    };
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

  /** The cursor line up to the cursor: the prompt without what is drawn after it (a hint, typed text). */
  private promptText(): string {
    const b = this.term.buffer.active;
    return b.getLine(this.cursorRow())?.translateToString(false, 0, b.cursorX) ?? '';
  }

  private screenState(): ScreenState {
    return { ...this.screenKind(), at: { opens: this.opens, closes: this.closes } };
  }

  private screenKind():
    | { kind: 'prompt'; matched: boolean }
    | { kind: 'permission'; text: string }
    | { kind: 'output' } {
    if (this.markerSeen) {
      if (!this.reading) return { kind: 'output' };
      const permission = this.permissionAbove();
      if (permission !== undefined) return { kind: 'permission', text: permission };
      return { kind: 'prompt', matched: this.profile.prompt.test(this.promptText()) };
    }
    // No read marker from this agent (yet): the prompt on the cursor line is all there is to go by.
    if (!this.isPrompt(this.logicalLineAt(this.cursorRow()))) return { kind: 'output' };
    const permission = this.permissionAbove();
    if (permission !== undefined) return { kind: 'permission', text: permission };
    return { kind: 'prompt', matched: true };
  }

  /** The permission question a few rows above the read that follows it, if there is one. */
  private permissionAbove(): string | undefined {
    const buffer = this.term.buffer.active;
    // The permission question sits a few rows above the prompt that follows it.
    for (let row = this.cursorRow() - 1; row >= Math.max(0, this.cursorRow() - 4); row--) {
      const line = buffer.getLine(row)?.translateToString(true) ?? '';
      if (this.profile.permission.test(line)) return line.trim();
      if (line.trim() !== '' && !this.profile.prompt.test(line)) break;
    }
    return undefined;
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
    const prefixed =
      first?.isFgPalette() === true && this.profile.replyPrefixColors.includes(first.getFgColor());
    return { text, prefixed };
  }

  private harvest(): void {
    const { text, prefixed } = this.logicalLineAt(this.cursorRow() - 1);
    const line = text.trimEnd();
    this.tail.push(line);
    if (this.tail.length > this.tailLimit) this.tail.shift();
    // The prompt and the echo of typed input: drawn while a read is open, ended by the line feed after its close.
    if (this.reading) return;
    if (this.skipNextLine) {
      this.skipNextLine = false;
      return;
    }
    if (!this.inTurn) return;
    const credits = /▸ Credits: (\d+(?:\.\d+)?)/u.exec(line);
    if (credits) this.credits = Number(credits[1]);
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
