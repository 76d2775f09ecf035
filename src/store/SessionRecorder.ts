import type { AgentSession } from '../agent/AgentSession.js';
import type { SessionPool } from '../pool/SessionPool.js';
import type { Store } from './Store.js';

export interface SessionRecorderOptions {
  readonly pool: SessionPool;
  readonly store: Store;
  readonly now?: () => number;
}

/**
 * Writes the history of every session to SQLite by listening to the pool and to each session's events, so data
 * flows one way: sessions know nothing of the store. Subscribes on `sessionCreated`, before the spawn, so the
 * row exists before the agent does (the reaper relies on it after a crash).
 */
export class SessionRecorder {
  private readonly pool: SessionPool;
  private readonly store: Store;
  private readonly now: () => number;
  private closed = false;
  private readonly onCreated = (s: AgentSession) => this.record(s);

  constructor(options: SessionRecorderOptions) {
    this.pool = options.pool;
    this.store = options.store;
    this.now = options.now ?? Date.now;
    this.pool.on('sessionCreated', this.onCreated);
  }

  /** Stops recording new sessions (sessions already followed keep being recorded until they close). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pool.off('sessionCreated', this.onCreated);
  }

  private record(s: AgentSession): void {
    const store = this.store;
    store.insertSession({
      id: s.id,
      threadId: s.threadId,
      channelId: s.channelId,
      userId: s.userId,
      instanceId: s.instanceId,
      marker: s.marker,
      cwd: s.cwd,
      command: s.command,
      startedAt: s.startedAt,
    });
    s.on('spawned', ({ pid, pidStartTime, command, isolation }) =>
      store.markSpawned(
        s.id,
        pid,
        pidStartTime ?? 0,
        { pid, command, cwd: s.cwd, isolation },
        this.now(),
        isolation,
      ),
    );
    s.on('ready', ({ ms }) => {
      store.markReady(s.id, s.startedAt + ms, { ms });
      const agentSessionId = s.agentSessionId;
      if (agentSessionId) store.recordAgentSession(s.id, s.threadId, agentSessionId, s.cwd, s.protocol);
    });
    s.on('choices', ({ kind, id }) => {
      store.recordThreadChoice(s.threadId, s.cwd, kind === 'model' ? { modelId: id } : { modeId: id });
      store.recordEvent(s.id, 'choice', { kind, id });
    });
    s.on('turnStart', ({ turnId, text }) => {
      store.countTurn(s.id);
      store.recordEvent(s.id, 'turn_start', { turnId, chars: text.length });
    });
    s.on('turnEnd', (r) =>
      store.recordEvent(s.id, 'turn_end', {
        turnId: r.turnId,
        ms: r.durationMs,
        chars: r.text.length,
        cancelled: r.cancelled,
        stopReason: r.stopReason,
        tools: r.tools.length,
        // The turn's merged `_kiro.dev/metadata`, once per turn (usageQueries sums these).
        ...(r.usage !== undefined && { usage: r.usage }),
      }),
    );
    s.on('cancel', ({ turnId }) => store.recordEvent(s.id, 'interrupt', { turnId }));
    s.on('permission', (p) =>
      store.recordEvent(s.id, 'permission', { requestId: p.requestId, turnId: p.turnId, text: p.title }),
    );
    s.on('permissionResolved', ({ requestId, optionId }) =>
      store.recordEvent(s.id, 'permission_answer', { requestId, answer: optionId }),
    );
    s.on('resumed', (r) => store.recordEvent(s.id, 'resumed', r));
    s.once('closed', (result) => {
      const { kill } = result;
      store.endSession(s.id, {
        reason: result.reason,
        endedAt: this.now(),
        exitCode: result.exitCode,
        exitSignal: result.exitSignal,
        killSignal: kill.signal,
        forced: kill.forced,
        pidsKilled: kill.pids,
        teardownMs: kill.durationMs,
        lastOutput: result.lastOutput.slice(-2000) || undefined,
      });
    });
  }
}
