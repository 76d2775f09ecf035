import { type AnyMessage, type Client, ClientSideConnection, RequestError } from '@agentclientprotocol/sdk';
import { ThreadwardenError } from '../../errors.js';
import type { AgentProcess } from '../../process/spawnAgent.js';
import type { ReadyInfo, Transport, TransportSink } from '../Transport.js';
import type {
  Choices,
  PermissionRequest,
  PromptCapabilities,
  PromptInput,
  ResumeOutcome,
  StopReason,
  ToolCallInfo,
  TurnUsage,
} from '../types.js';
import {
  errorText,
  parseKiroMetadata,
  parseModels,
  parseModes,
  parseOptions,
  parseStatus,
} from './acpParse.js';
import { DEFAULT_MAX_LINE_BYTES, LineGate, type OversizedLine } from './LineGate.js';
import { LogTail } from './LogTail.js';
import { promptBlocks } from './promptBlocks.js';

/** What the thread had before: the agent session to load and the model/mode the users chose. */
export interface AcpResume {
  readonly agentSessionId: string;
  readonly modelId?: string | undefined;
  readonly modeId?: string | undefined;
}

export interface AcpTransportOptions {
  readonly cwd: string;
  /** Answer every permission question allow_once without asking, and pass `--trust-all-tools`. */
  readonly trustAllTools: boolean;
  readonly resume?: AcpResume | undefined;
  /** Give up on session/load after this long and start afresh, ms. */
  readonly loadTimeoutMs: number;
  readonly maxLineBytes?: number;
  readonly maxTurnChars?: number;
  readonly clientVersion?: string;
}

const STOP_REASONS = new Set<StopReason>([
  'end_turn',
  'cancelled',
  'max_tokens',
  'max_turn_requests',
  'refusal',
]);

const LOGIN_HINT =
  'kiro-cli is not logged in on the bot host. The operator must run `kiro-cli login` there (as the user the bot runs as), then send the message again.';

interface OpenQuestion {
  readonly request: PermissionRequest;
  readonly answer: (optionId: string | 'cancelled') => void;
}

interface Turn {
  readonly turnId: number;
  text: string;
  omitted: number;
  notes: string[];
  readonly tools: Map<string, ToolCallInfo>;
  usage: TurnUsage | undefined;
  cancelled: boolean;
}

/**
 * kiro-cli over the Agent Client Protocol on the agent's stdio pipes, through the SDK's ClientSideConnection.
 * Only JSON-RPC lines reach the SDK (LineGate); stderr and every other line go to the log tail.
 */
export class AcpTransport implements Transport {
  readonly protocol = 'acp' as const;
  readonly mode = 'pipes' as const;
  private readonly opts: AcpTransportOptions;
  private readonly maxLineBytes: number;
  private readonly maxTurnChars: number;
  private readonly tail = new LogTail(40, 400);
  private sink: TransportSink | undefined;
  private proc: AgentProcess | undefined;
  private conn: ClientSideConnection | undefined;
  private input: ReadableStreamDefaultController<AnyMessage> | undefined;
  private gate: LineGate | undefined;
  private disposables: { dispose(): void }[] = [];
  private sessionId: string | undefined;
  private _models: Choices | undefined;
  private _modes: Choices | undefined;
  private caps: PromptCapabilities = { image: false };
  private resume: AcpResume | undefined;
  private resumed: ResumeOutcome | undefined;
  /** Set while session/load runs: an exit now means "start a fresh process", not a failed start. */
  private loading = false;
  private ready = false;
  private aborted = false;
  private turn: Turn | undefined;
  private readonly questions = new Map<string, OpenQuestion>();
  private questionCounter = 0;
  private loadTimer: NodeJS.Timeout | undefined;
  /** Bumped on every attach, so answers from an earlier process are ignored. */
  private generation = 0;

  constructor(options: AcpTransportOptions) {
    this.opts = options;
    this.resume = options.resume;
    this.maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.maxTurnChars = options.maxTurnChars ?? 200_000;
  }

  get agentSessionId(): string | undefined {
    return this.sessionId;
  }

  get promptCapabilities(): PromptCapabilities {
    return this.caps;
  }

  get pendingPermission(): PermissionRequest | undefined {
    return this.questions.values().next().value?.request;
  }

  models(): Choices | undefined {
    return this._models;
  }

  modes(): Choices | undefined {
    return this._modes;
  }

  extraArgs(): readonly string[] {
    return this.opts.trustAllTools ? ['--trust-all-tools'] : [];
  }

  attach(proc: AgentProcess, sink: TransportSink): void {
    this.detach();
    const generation = ++this.generation;
    this.proc = proc;
    this.sink = sink;
    // The SDK gets messages, not bytes: LineGate has already cut and parsed each line, and a second decode, line
    // split and JSON.parse in the SDK's ndJsonStream cost as much again per message (200 streaming sessions).
    let controller!: ReadableStreamDefaultController<AnyMessage>;
    const readable = new ReadableStream<AnyMessage>({
      start: (c) => {
        controller = c;
      },
    });
    this.input = controller;
    const writable = new WritableStream<AnyMessage>({
      write: (message) => {
        if (generation === this.generation) proc.write(`${JSON.stringify(message)}\n`);
      },
    });
    this.gate = new LineGate(
      {
        protocol: (_line, message) => this.feed(message, generation),
        other: (line) => this.tail.add(`stdout: ${line}`),
        oversized: (line) => this.onOversized(line),
      },
      this.maxLineBytes,
    );
    const gate = this.gate;
    this.disposables.push(
      proc.onData((data) => {
        sink.output();
        gate.push(data);
      }),
      proc.onStderr((data) => {
        for (const line of data.split('\n')) if (line.trim() !== '') this.tail.add(line);
      }),
      proc.onExit(() => {
        gate.flush();
        try {
          controller.close();
        } catch {
          // already closed
        }
      }),
    );
    const client = this.client(generation);
    this.conn = new ClientSideConnection(() => client, { readable, writable });
    void this.handshake(generation);
  }

  beginTurn(turnId: number, input: PromptInput): void {
    const conn = this.conn;
    const sessionId = this.sessionId;
    if (!conn || !sessionId) return;
    const turn: Turn = {
      turnId,
      text: '',
      omitted: 0,
      notes: [],
      tools: new Map(),
      usage: undefined,
      cancelled: false,
    };
    this.turn = turn;
    const generation = this.generation;
    conn.prompt({ sessionId, prompt: promptBlocks(input, this.caps.image) as never }).then(
      (res) => {
        const r = res as { stopReason?: unknown };
        const stop = STOP_REASONS.has(r.stopReason as StopReason) ? (r.stopReason as StopReason) : 'end_turn';
        // The SDK may resolve the answer before it has dispatched the notifications written ahead of it (the
        // turn's metadata); by the next macrotask they all are.
        setImmediate(() => this.finish(turn, generation, turn.cancelled ? 'cancelled' : stop));
      },
      (err: unknown) => {
        if (this.aborted || generation !== this.generation || conn.signal.aborted) return;
        const reason = errorText(err);
        this.sink?.log.warn({ err: reason }, 'session/prompt failed');
        turn.notes.push(
          /not logged in|kiro-cli login|auth/i.test(reason)
            ? `⚠️ ${LOGIN_HINT}`
            : `⚠️ The agent could not run this message: ${reason}`,
        );
        this.finish(turn, generation, turn.cancelled ? 'cancelled' : 'end_turn');
      },
    );
  }

  partial(): string {
    return this.turn ? this.turn.text : '';
  }

  cancel(): boolean {
    const turn = this.turn;
    if (!turn || !this.conn || !this.sessionId || this.aborted) return false;
    turn.cancelled = true;
    // The spec: the client answers its open questions `cancelled` when it cancels the turn.
    this.answerAll('cancelled');
    this.conn.cancel({ sessionId: this.sessionId }).catch(() => undefined);
    return true;
  }

  answerPermission(requestId: string, optionId: string): boolean {
    const q = this.questions.get(requestId);
    if (!q || this.aborted) return false;
    if (!q.request.options.some((o) => o.optionId === optionId)) return false;
    q.answer(optionId);
    return true;
  }

  setModel(id: string): Promise<void> {
    return this.setChoice('session/set_model', { modelId: id }, 'model', id);
  }

  setMode(id: string): Promise<void> {
    return this.setChoice('session/set_mode', { modeId: id }, 'mode', id);
  }

  recentOutput(): string {
    return this.tail.text();
  }

  drain(): Promise<void> {
    return Promise.resolve();
  }

  diagnoseExit(exitCode: number): string | undefined {
    if (/not logged in|kiro-cli login/i.test(this.tail.text())) return LOGIN_HINT;
    if (!this.ready && exitCode === 0 && !this.sessionId)
      return 'The agent exited (code 0) during the ACP handshake. Is KIRO_ARGS right for AGENT_PROTOCOL=acp (`acp`)?';
    return undefined;
  }

  exitedBeforeReady(): boolean {
    if (!this.loading) return false;
    this.loading = false;
    this.failResume('the agent exited while loading the earlier conversation');
    return true;
  }

  timeoutMessage(ms: number): string {
    return `The agent did not finish the ACP start-up (initialize and session/new) within ${ms} ms.`;
  }

  abort(): void {
    this.aborted = true;
    clearTimeout(this.loadTimer);
    this.answerAll('cancelled');
  }

  dispose(): void {
    this.abort();
    this.detach();
  }

  private detach(): void {
    for (const d of this.disposables) d.dispose();
    this.disposables = [];
    try {
      this.input?.close();
    } catch {
      // already closed
    }
    this.input = undefined;
    this.conn = undefined;
    this.turn = undefined;
  }

  /**
   * One JSON-RPC message from the agent. Reply text (agent_message_chunk, nearly every message of a turn) goes
   * straight to the turn, checked here field by field as onUpdate reads it; everything else goes through the SDK.
   * The SDK's schema check of each session/update was a third of the bot's CPU with 200 sessions streaming.
   * Order holds: a chunk is handled when its line arrives, so before the prompt's answer that follows it.
   */
  private feed(message: Record<string, unknown>, generation: number): void {
    if (message.method === 'session/update' && !('id' in message)) {
      const params = message.params as Record<string, unknown> | undefined;
      const update = params?.update as Record<string, unknown> | undefined;
      if (update?.sessionUpdate === 'agent_message_chunk') {
        this.onUpdate(params!, generation);
        return;
      }
    }
    try {
      this.input?.enqueue(message as unknown as AnyMessage);
    } catch {
      // the stream closed (exit): nothing more to deliver
    }
  }

  private async handshake(generation: number): Promise<void> {
    const conn = this.conn!;
    const sink = this.sink!;
    const current = () => generation === this.generation && !this.aborted;
    try {
      const init = (await conn.initialize({
        protocolVersion: 1,
        clientCapabilities: { fs: { readTextFile: false, writeTextFile: false }, terminal: false },
        clientInfo: { name: 'threadwarden', version: this.opts.clientVersion ?? '0' },
      } as never)) as unknown as Record<string, unknown>;
      if (!current()) return;
      const caps = (init.agentCapabilities ?? {}) as Record<string, unknown>;
      const prompt = (caps.promptCapabilities ?? {}) as Record<string, unknown>;
      this.caps = { image: prompt.image === true };
      const auth = Array.isArray(init.authMethods) ? (init.authMethods as { id?: unknown }[]) : [];
      if (auth.some((m) => m.id === 'kiro-login')) {
        sink.fatal(LOGIN_HINT);
        sink.failed(LOGIN_HINT);
        return;
      }
      const resume = this.resume;
      if (resume?.agentSessionId && caps.loadSession === true) {
        if (await this.load(conn, resume, generation)) return this.becomeReady(generation);
        if (!current() || this.loading) return;
      } else if (resume?.agentSessionId) {
        this.failResume('the agent does not offer session/load');
      }
      const created = (await conn.newSession({ cwd: this.opts.cwd, mcpServers: [] })) as unknown as Record<
        string,
        unknown
      >;
      if (!current()) return;
      if (typeof created.sessionId !== 'string') throw new Error('session/new gave no sessionId');
      this.sessionId = created.sessionId;
      this._models = parseModels(created.models);
      this._modes = parseModes(created.modes);
      await this.reapply(resume, generation);
      this.becomeReady(generation);
    } catch (err) {
      if (!current() || conn.signal.aborted) return;
      const reason = errorText(err);
      sink.failed(`The agent failed its ACP start-up: ${reason}`);
    }
  }

  /** session/load with a timeout; true when the earlier conversation is back. */
  private async load(conn: ClientSideConnection, resume: AcpResume, generation: number): Promise<boolean> {
    this.loading = true;
    const timeout = new Promise<'timeout'>((resolve) => {
      this.loadTimer = setTimeout(() => resolve('timeout'), this.opts.loadTimeoutMs);
      this.loadTimer.unref();
    });
    try {
      const result = await Promise.race([
        conn.loadSession({ sessionId: resume.agentSessionId, cwd: this.opts.cwd, mcpServers: [] }),
        timeout,
      ]);
      if (generation !== this.generation || this.aborted) return false;
      if (result === 'timeout') {
        // kiro 1.28 never answers a load it cannot do; a fresh process is the only known-good state.
        this.failResume(`no answer to session/load within ${this.opts.loadTimeoutMs} ms`);
        this.sink?.respawn();
        return false;
      }
      this.loading = false;
      const r = (result ?? {}) as Record<string, unknown>;
      this.sessionId = resume.agentSessionId;
      this._models = parseModels(r.models);
      this._modes = parseModes(r.modes);
      this.resumed = { restored: true };
      this.resume = undefined;
      await this.reapply(resume, generation);
      return true;
    } catch (err) {
      if (generation !== this.generation || this.aborted || conn.signal.aborted) return false;
      this.loading = false;
      this.failResume(errorText(err));
      return false;
    } finally {
      clearTimeout(this.loadTimer);
    }
  }

  private failResume(reason: string): void {
    this.sink?.log.info({ reason }, 'earlier conversation not restored; starting a new one');
    this.resumed = { restored: false, reason };
    // Keep the chosen model and mode for the fresh session; never try the load again.
    if (this.resume) this.resume = { ...this.resume, agentSessionId: '' };
  }

  /** Re-applies the thread's chosen model and mode (a failure is logged, the session goes on). */
  private async reapply(resume: AcpResume | undefined, generation: number): Promise<void> {
    if (!resume) return;
    for (const [method, key, id, kind] of [
      ['session/set_model', 'modelId', resume.modelId, 'model'],
      ['session/set_mode', 'modeId', resume.modeId, 'mode'],
    ] as const) {
      if (!id || generation !== this.generation) continue;
      const now = kind === 'model' ? this._models?.current : this._modes?.current;
      if (now === id) continue;
      try {
        await this.setChoice(method, { [key]: id }, kind, id);
      } catch (err) {
        this.sink?.log.warn(
          { err: (err as Error).message, kind, id },
          'could not re-apply the thread’s choice',
        );
      }
    }
  }

  private becomeReady(generation: number): void {
    if (generation !== this.generation || this.aborted || this.ready) return;
    this.ready = true;
    this.resume = undefined;
    const info: ReadyInfo = {
      ...(this.sessionId !== undefined && { agentSessionId: this.sessionId }),
      ...(this._models !== undefined && { models: this._models }),
      ...(this._modes !== undefined && { modes: this._modes }),
      promptCapabilities: this.caps,
      ...(this.resumed !== undefined && { resumed: this.resumed }),
    };
    this.sink?.ready(info);
  }

  private async setChoice(
    method: 'session/set_model' | 'session/set_mode',
    params: Record<string, string>,
    kind: 'model' | 'mode',
    id: string,
  ): Promise<void> {
    const conn = this.conn;
    if (!conn || !this.sessionId || this.aborted)
      throw new ThreadwardenError('SESSION_CLOSED', 'The agent session is not running.');
    try {
      await conn.request(method as never, { sessionId: this.sessionId, ...params } as never);
    } catch (err) {
      throw new ThreadwardenError(
        'AGENT_ERROR',
        `The agent refused to switch ${kind} to \`${id}\`: ${errorText(err)}`,
        { cause: err },
      );
    }
    const set = (c: Choices | undefined): Choices => ({ available: c?.available ?? [], current: id });
    if (kind === 'model') this._models = set(this._models);
    else this._modes = set(this._modes);
    this.sink?.choices({ kind, id });
  }

  private finish(turn: Turn, generation: number, stopReason: StopReason): void {
    if (this.turn !== turn || generation !== this.generation || this.aborted) return;
    this.turn = undefined;
    // Questions the agent left open belong to the turn that ended.
    this.answerAll('cancelled');
    // kiro ends its chunks with newlines; the reply does not (as the classic transport's trimmed screen lines).
    let text = turn.text.replace(/\s+$/, '');
    if (turn.omitted > 0) text += `\n… (${turn.omitted} more characters of the reply were not kept)`;
    if (turn.notes.length > 0) text += `${text === '' ? '' : '\n\n'}${turn.notes.join('\n')}`;
    this.sink?.turnEnd({
      text,
      stopReason,
      tools: [...turn.tools.values()],
      ...(turn.usage !== undefined && { usage: turn.usage }),
    });
  }

  private answerAll(outcome: 'cancelled'): void {
    for (const q of [...this.questions.values()]) q.answer(outcome);
  }

  private onOversized(line: OversizedLine): void {
    const mb = (line.bytes / 1024 / 1024).toFixed(1);
    const cap = `${(this.maxLineBytes / 1024 / 1024).toFixed(0)} MiB`;
    this.tail.add(`stdout: (a ${mb} MB line over the ${cap} cap was dropped: ${line.head.slice(0, 120)}…)`);
    this.sink?.log.warn({ bytes: line.bytes }, 'dropped an agent line over the cap');
    const kind = classifyOversized(line);
    if (kind.type === 'response' && kind.id !== undefined) {
      // The request it answers must not hang: hand the SDK an error in its place.
      this.feed(
        {
          jsonrpc: '2.0',
          id: kind.id,
          error: {
            code: -32603,
            message: 'Internal error',
            data: `the agent's answer (${mb} MB) was over the bot's ${cap} line cap`,
          },
        },
        this.generation,
      );
    } else if (kind.type === 'request' && kind.id !== undefined) {
      this.proc?.write(
        `${JSON.stringify({ jsonrpc: '2.0', id: kind.id, error: { code: -32600, message: `request over the client's ${cap} line cap` } })}\n`,
      );
    }
    this.turn?.notes.push(
      `⚠️ The agent sent one message of ${mb} MB, over the bot's ${cap} limit; it was dropped${kind.type === 'notification' && kind.method === 'session/update' ? ' (part of the reply or a tool update is missing)' : ''}.`,
    );
  }

  /** The client half the SDK calls into. */
  private client(generation: number): Client {
    const notFound = (method: string) => () => {
      throw RequestError.methodNotFound(method);
    };
    return {
      requestPermission: (params) =>
        this.onPermission(params as unknown as Record<string, unknown>, generation) as never,
      sessionUpdate: (params) => this.onUpdate(params as unknown as Record<string, unknown>, generation),
      readTextFile: notFound('fs/read_text_file'),
      writeTextFile: notFound('fs/write_text_file'),
      createTerminal: notFound('terminal/create'),
      terminalOutput: notFound('terminal/output'),
      releaseTerminal: notFound('terminal/release'),
      waitForTerminalExit: notFound('terminal/wait_for_exit'),
      killTerminal: notFound('terminal/kill'),
      extMethod: async (method) => {
        // V3 asks which shell to describe at start-up; a wrong answer stalls it for good (kiro-acp.md §9).
        if (method.replace(/^_/, '') === 'kiro/terminal/shell_type') return { shellType: 'bash' };
        throw RequestError.methodNotFound(method);
      },
      extNotification: async (method, params) => {
        if (generation !== this.generation) return;
        if (method.replace(/^_/, '') === 'kiro.dev/metadata') this.onMetadata(params);
      },
    };
  }

  private onUpdate(params: Record<string, unknown>, generation: number): void {
    if (generation !== this.generation || this.aborted) return;
    const turn = this.turn;
    if (!turn || params.sessionId !== this.sessionId) return;
    const u = (params.update ?? {}) as Record<string, unknown>;
    switch (u.sessionUpdate) {
      case 'agent_message_chunk': {
        const content = (u.content ?? {}) as Record<string, unknown>;
        if (content.type !== 'text' || typeof content.text !== 'string') return;
        const room = this.maxTurnChars - turn.text.length;
        if (room >= content.text.length) turn.text += content.text;
        else {
          if (room > 0) turn.text += content.text.slice(0, room);
          turn.omitted += content.text.length - Math.max(room, 0);
        }
        this.sink?.turnProgress();
        return;
      }
      case 'tool_call':
      case 'tool_call_update': {
        const id = typeof u.toolCallId === 'string' ? u.toolCallId : undefined;
        if (!id) return;
        const before = turn.tools.get(id);
        const title = typeof u.title === 'string' && u.title !== '' ? u.title : (before?.title ?? 'tool');
        const status = parseStatus(u.status) ?? before?.status ?? 'pending';
        const info: ToolCallInfo = { id, title, status };
        turn.tools.set(id, info);
        this.sink?.tool(info);
        this.sink?.turnProgress();
        return;
      }
      default:
        // Thoughts, plans, commands lists, replayed history: not reply text.
        return;
    }
  }

  private onMetadata(params: Record<string, unknown>): void {
    const turn = this.turn;
    if (!turn || params.sessionId !== this.sessionId) return;
    const usage = parseKiroMetadata(params);
    if (!usage) return;
    // kiro 2.19 sends two frames per turn (context, then credits and duration): merge them.
    turn.usage = { ...turn.usage, ...usage };
    this.sink?.usage(usage);
  }

  private onPermission(params: Record<string, unknown>, generation: number): Promise<unknown> {
    const options = parseOptions(params.options);
    const cancelled = { outcome: { outcome: 'cancelled' } };
    if (generation !== this.generation || this.aborted || options.length === 0)
      return Promise.resolve(cancelled);
    if (this.opts.trustAllTools) {
      const once = options.find((o) => o.kind === 'allow_once');
      if (once) return Promise.resolve({ outcome: { outcome: 'selected', optionId: once.optionId } });
    }
    const tool = (params.toolCall ?? {}) as Record<string, unknown>;
    const title = typeof tool.title === 'string' && tool.title !== '' ? tool.title : 'a tool';
    const request: PermissionRequest = {
      requestId: `${this.generation}.${++this.questionCounter}`,
      turnId: this.turn?.turnId ?? 0,
      title,
      options,
    };
    return new Promise((resolve) => {
      this.questions.set(request.requestId, {
        request,
        answer: (optionId) => {
          if (!this.questions.delete(request.requestId)) return;
          resolve(optionId === 'cancelled' ? cancelled : { outcome: { outcome: 'selected', optionId } });
          this.sink?.permissionResolved(request.requestId, optionId);
        },
      });
      this.sink?.permission(request);
    });
  }
}

/** What an oversized line was, judged from its first key (kiro writes jsonrpc first, then result/error/id/method). */
export function classifyOversized(line: OversizedLine): {
  type: 'response' | 'request' | 'notification' | 'unknown';
  id: number | string | undefined;
  method: string | undefined;
} {
  const first = /^\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"(\w+)"\s*:\s*/.exec(line.head);
  const idAt = (text: string, re: RegExp) => {
    const m = re.exec(text)?.[1];
    return m === undefined ? undefined : m.startsWith('"') ? m.slice(1, -1) : Number(m);
  };
  const tailId = idAt(line.tail, /"id"\s*:\s*(\d+|"[^"]{0,100}")\s*\}\s*$/);
  if (!first) return { type: 'unknown', id: undefined, method: undefined };
  const key = first[1];
  const rest = line.head.slice(first[0].length);
  if (key === 'result' || key === 'error') return { type: 'response', id: tailId, method: undefined };
  if (key === 'id') {
    const id = idAt(rest, /^(\d+|"[^"]{0,100}")/);
    const method = /^(?:\d+|"[^"]*")\s*,\s*"method"\s*:\s*"([^"]{1,200})"/.exec(rest)?.[1];
    return method ? { type: 'request', id, method } : { type: 'response', id, method: undefined };
  }
  if (key === 'method') {
    const method = /^"([^"]{1,200})"/.exec(rest)?.[1];
    return tailId !== undefined
      ? { type: 'request', id: tailId, method }
      : { type: 'notification', id: undefined, method };
  }
  return { type: 'unknown', id: undefined, method: undefined };
}
