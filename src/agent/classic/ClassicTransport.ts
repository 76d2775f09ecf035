import { ThreadwardenError } from '../../errors.js';
import type { AgentProcess } from '../../process/spawnAgent.js';
import type { AgentProfile } from '../AgentProfile.js';
import { sanitizeInput } from '../sanitize.js';
import type { Transport, TransportSink } from '../Transport.js';
import { type ScreenState, TurnReader } from '../TurnReader.js';
import type { Choices, PermissionOption, PermissionRequest, PromptInput } from '../types.js';
import { typedInput } from './typedInput.js';
import { writeWorkspaceSettings } from './workspaceSettings.js';

export interface ClassicTransportOptions {
  readonly profile: AgentProfile;
  /** Fallback end of turn: this long without output while the last line on screen is a prompt, ms. */
  readonly turnQuietMs: number;
  readonly trustAllTools: boolean;
  /** Whether the thread's workspace held an earlier session (then the profile's resume arguments are added). */
  readonly resume: boolean;
  readonly maxTurnChars?: number;
  readonly cols?: number;
  readonly rows?: number;
}

/** Pause the pty when this many bytes wait to be parsed; resume below the low mark. Bounds memory under a flood. */
const HIGH_WATER = 512 * 1024;
const LOW_WATER = 64 * 1024;

/** The classic UI's y/t/n answers as permission options (optionId = the key typed). */
function classicOptions(profile: AgentProfile): PermissionOption[] {
  return [
    { optionId: profile.answers.allow, name: 'Yes', kind: 'allow_once' },
    { optionId: profile.answers.always, name: 'Always', kind: 'allow_always' },
    { optionId: profile.answers.deny, name: 'No', kind: 'reject_once' },
  ];
}

/**
 * The classic line UI in a pty: input typed as one bracketed paste at an open read, a headless terminal cutting the
 * screen into turns, and the line editor's next read (its bracketed-paste marker) as the end of a turn. The
 * workspace settings the bot writes before spawn keep the screen predictable (raw markdown, no hint, no trust menu).
 */
export class ClassicTransport implements Transport {
  readonly protocol = 'classic' as const;
  readonly mode = 'pty' as const;
  readonly agentSessionId = undefined;
  readonly promptCapabilities = { image: false };
  private readonly opts: ClassicTransportOptions;
  private readonly reader: TurnReader;
  private proc: AgentProcess | undefined;
  private sink: TransportSink | undefined;
  private started = false;
  private inTurn: { turnId: number; cancelled: boolean } | undefined;
  /** A cancel that waits for the agent to take the turn's text (see cancel()). */
  private interruptPending = false;
  private pending: PermissionRequest | undefined;
  private permissionCounter = 0;
  private pendingBytes = 0;
  /** The last output write to the terminal; exit handling waits for it so no output is lost. */
  private lastParse: Promise<unknown> = Promise.resolve();
  private paused = false;
  private aborted = false;
  private quietTimer: NodeJS.Timeout | undefined;
  private lastOutputAt = 0;
  private disposables: { dispose(): void }[] = [];
  private warnedPrompt = false;

  constructor(options: ClassicTransportOptions) {
    this.opts = options;
    this.reader = new TurnReader(options.profile, {
      ...(options.cols !== undefined && { cols: options.cols }),
      ...(options.rows !== undefined && { rows: options.rows }),
      ...(options.maxTurnChars !== undefined && { maxTurnChars: options.maxTurnChars }),
    });
    this.reader.onReply = (data) => this.proc?.write(data);
  }

  get cols(): number {
    return this.reader.cols;
  }

  get rows(): number {
    return this.reader.rows;
  }

  get pendingPermission(): PermissionRequest | undefined {
    return this.pending;
  }

  /** Before spawn: the workspace settings file (the pty's size is fixed at spawn and never changed). */
  prepare(cwd: string): void {
    const p = this.opts.profile;
    if (p.settingsFile) writeWorkspaceSettings(cwd, p.settingsFile, p.settings);
  }

  extraArgs(): readonly string[] {
    const args: string[] = [...this.opts.profile.fixedArgs];
    if (this.opts.trustAllTools) args.push(...this.opts.profile.trustAllArgs);
    // A workspace that exists held an earlier session of this thread: resume its conversation.
    if (this.opts.resume) args.push(...this.opts.profile.resumeArgs);
    return args;
  }

  attach(proc: AgentProcess, sink: TransportSink): void {
    this.proc = proc;
    this.sink = sink;
    this.lastOutputAt = sink.now();
    this.disposables.push(proc.onData((data) => this.onData(data)));
  }

  beginTurn(turnId: number, input: PromptInput): void {
    const proc = this.proc;
    if (!proc) return;
    this.inTurn = { turnId, cancelled: false };
    this.reader.beginTurn();
    // Turns start only at an open read (ready, or the previous turn's end), so nothing is typed into a cooked
    // terminal, where it would echo and arrive as Ctrl-J lines instead of a submit.
    proc.write(typedInput(classicPromptText(input), this.opts.profile));
    this.armQuietTimer();
  }

  partial(): string {
    return this.inTurn ? this.reader.partial() : '';
  }

  cancel(): boolean {
    if (!this.inTurn || !this.proc || this.aborted) return false;
    this.inTurn.cancelled = true;
    if (this.pending) {
      const id = this.pending.requestId;
      this.pending = undefined;
      this.sink?.permissionResolved(id, 'cancelled');
    }
    // A Ctrl-C typed while the agent still reads the turn's text arrives in raw mode: data for the line editor, not
    // SIGINT, and the turn would never be cancelled. Send it once the read has closed (cooked mode, ISIG on).
    if (this.reader.echoDone) this.proc.write(this.opts.profile.interrupt);
    else this.interruptPending = true;
    return true;
  }

  answerPermission(requestId: string, optionId: string): boolean {
    const p = this.pending;
    if (!p || p.requestId !== requestId || !this.proc || this.aborted) return false;
    if (!p.options.some((o) => o.optionId === optionId)) return false;
    this.pending = undefined;
    this.reader.markInput();
    this.proc.write(optionId + this.opts.profile.submit);
    this.sink?.permissionResolved(requestId, optionId);
    return true;
  }

  models(): Choices | undefined {
    return undefined;
  }

  modes(): Choices | undefined {
    return undefined;
  }

  setModel(): Promise<void> {
    return Promise.reject(
      new ThreadwardenError('UNSUPPORTED', 'The classic kiro-cli UI cannot switch models from the bot.'),
    );
  }

  setMode(): Promise<void> {
    return Promise.reject(
      new ThreadwardenError('UNSUPPORTED', 'The classic kiro-cli UI cannot switch agents from the bot.'),
    );
  }

  recentOutput(): string {
    return this.reader.recentOutput();
  }

  drain(): Promise<void> {
    return this.lastParse.then(() => undefined);
  }

  diagnoseExit(): string | undefined {
    const recent = this.reader.recentOutput();
    return this.opts.profile.fatal.find((f) => f.pattern.test(recent))?.message;
  }

  timeoutMessage(ms: number): string {
    return `The agent did not show its prompt within ${ms} ms.`;
  }

  abort(): void {
    this.aborted = true;
    clearTimeout(this.quietTimer);
    if (this.pending) {
      const id = this.pending.requestId;
      this.pending = undefined;
      this.sink?.permissionResolved(id, 'cancelled');
    }
  }

  dispose(): void {
    this.abort();
    for (const d of this.disposables) d.dispose();
    this.disposables = [];
    this.reader.dispose();
  }

  private onData(data: string): void {
    const sink = this.sink!;
    this.lastOutputAt = sink.now();
    sink.output();
    this.pendingBytes += data.length;
    if (!this.paused && this.pendingBytes > HIGH_WATER && this.proc) {
      this.paused = true;
      this.proc.pause();
    }
    this.lastParse = this.reader.write(data).then((screen) => {
      this.pendingBytes -= data.length;
      if (this.paused && this.pendingBytes < LOW_WATER && this.proc && !this.aborted) {
        this.paused = false;
        this.proc.resume();
      }
      this.onScreen(screen);
    });
  }

  private onScreen(screen: ScreenState): void {
    if (this.aborted) return;
    const sink = this.sink!;
    if (screen.kind === 'prompt') this.crossCheck(screen.matched);
    if (!this.started) {
      if (screen.kind === 'prompt') {
        this.started = true;
        sink.ready({});
        return;
      }
      const recent = this.reader.recentOutput();
      const fatal = this.opts.profile.fatal.find((f) => f.pattern.test(recent));
      if (!fatal) return;
      // A menu waits for a key forever: end the start now instead of at the spawn timeout.
      if (fatal.waits) sink.failed(fatal.message);
      else sink.fatal(fatal.message);
      return;
    }
    if (!this.inTurn) return;
    if (this.interruptPending && this.reader.tookInput(screen)) {
      this.interruptPending = false;
      this.proc?.write(this.opts.profile.interrupt);
    }
    sink.turnProgress();
    this.armQuietTimer();
    if (!this.reader.tookInput(screen)) return;
    if (screen.kind === 'permission' && this.pending === undefined && this.opts.trustAllTools) {
      // TRUST_ALL_TOOLS (CONTRACT.md): a question the agent still asks is approved once, never surfaced.
      this.reader.markInput();
      this.proc?.write(this.opts.profile.answers.allow + this.opts.profile.submit);
    } else if (screen.kind === 'permission' && this.pending === undefined) {
      this.pending = {
        requestId: String(++this.permissionCounter),
        turnId: this.inTurn.turnId,
        title: screen.text,
        options: classicOptions(this.opts.profile),
      };
      sink.permission(this.pending);
    } else if (screen.kind === 'prompt' && this.pending === undefined) {
      this.finishTurn();
    }
  }

  /** The read marker decides; a prompt the profile does not know means the profile is stale: say so once. */
  private crossCheck(matched: boolean): void {
    if (matched || this.warnedPrompt) return;
    this.warnedPrompt = true;
    this.sink?.log.warn(
      { line: this.reader.recentOutput().split('\n').pop() },
      'the agent reads input at a prompt the classic profile does not know; update AgentProfile.prompt',
    );
  }

  private finishTurn(): void {
    const turn = this.inTurn;
    if (!turn) return;
    clearTimeout(this.quietTimer);
    this.quietTimer = undefined;
    this.inTurn = undefined;
    this.interruptPending = false;
    const usage = this.reader.usage();
    if (usage.credits !== undefined || usage.contextPercent !== undefined) this.sink?.usage(usage);
    this.sink?.turnEnd({
      text: this.reader.endTurn(),
      stopReason: turn.cancelled ? 'cancelled' : 'end_turn',
      tools: [],
      ...((usage.credits !== undefined || usage.contextPercent !== undefined) && { usage }),
    });
  }

  /** Fallback for agents whose prompt redraw we missed: a quiet screen whose last line is a prompt ends the turn. */
  private armQuietTimer(): void {
    // One timer per quiet period, not one per chunk of output: on firing it checks how long output has really
    // been quiet and waits out the rest (this runs in the pty data path).
    if (this.quietTimer) return;
    const check = () => {
      this.quietTimer = undefined;
      if (!this.inTurn || this.aborted) return;
      const quietFor = this.sink!.now() - this.lastOutputAt;
      if (quietFor < this.opts.turnQuietMs) {
        this.quietTimer = setTimeout(check, this.opts.turnQuietMs - quietFor);
        this.quietTimer.unref();
        return;
      }
      if (this.reader.echoDone && !this.pending && this.reader.promptVisible()) {
        this.sink?.log.debug('turn ended by quiet-period fallback');
        this.finishTurn();
      }
    };
    this.quietTimer = setTimeout(check, this.opts.turnQuietMs);
    this.quietTimer.unref();
  }
}

/** The text typed for a message: sanitized, with saved attachments named by path (the classic UI has no blocks). */
export function classicPromptText(input: PromptInput): string {
  const text = sanitizeInput(input.text);
  const files = input.attachments ?? [];
  if (files.length === 0) return text;
  const list = files.map(
    (f) => `- ${sanitizeInput(f.path)} (${sanitizeInput(f.name)}, ${f.mimeType}, ${f.size} bytes)`,
  );
  return `${text}${text.trim() === '' ? '' : '\n\n'}Attached files (saved in the workspace):\n${list.join('\n')}`;
}
