import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AcpTransport } from '../src/agent/acp/AcpTransport.js';
import type { TransportSink, TurnEnd } from '../src/agent/Transport.js';
import { silentLogger } from '../src/log/logger.js';
import type { AgentProcess } from '../src/process/spawnAgent.js';

const SESSION = 'sess-1';

/**
 * An agent on the other end of the wire, in memory: it answers initialize and session/new, and answers a prompt
 * with the frames a test scripts (in one write each, or all in one write), then the prompt's answer. Protocol
 * parsing is what is under test here; the process paths have their own tests (acpSession.test.ts).
 */
function wire(frames: () => string[], oneWrite: boolean) {
  let onData: ((d: string) => void) | undefined;
  const send = (s: string) => queueMicrotask(() => onData?.(s));
  const proc = {
    mode: 'pipes',
    pid: 1,
    startTime: 1,
    spec: { file: 'x', args: [], cwd: '/', env: {}, mode: 'pipes' },
    write: (data: string) => {
      for (const line of data.split('\n')) {
        if (line === '') continue;
        const m = JSON.parse(line) as { id?: number; method?: string };
        if (m.method === 'initialize')
          send(
            `${JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { protocolVersion: 1, agentCapabilities: {} } })}\n`,
          );
        else if (m.method === 'session/new')
          send(`${JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { sessionId: SESSION } })}\n`);
        else if (m.method === 'session/prompt') {
          const out = [
            ...frames(),
            JSON.stringify({ jsonrpc: '2.0', id: m.id, result: { stopReason: 'end_turn' } }),
          ];
          if (oneWrite) send(`${out.join('\n')}\n`);
          else for (const f of out) send(`${f}\n`);
        }
      }
    },
    onData: (l: (d: string) => void) => {
      onData = l;
      return { dispose: () => (onData = undefined) };
    },
    onStderr: () => ({ dispose() {} }),
    onExit: () => ({ dispose() {} }),
    pause() {},
    resume() {},
    stdin: undefined,
    stdout: undefined,
    endInput() {},
  } as unknown as AgentProcess;
  return proc;
}

function sink(on: {
  ready: () => void;
  end: (e: TurnEnd) => void;
  failed: (m: string) => void;
}): TransportSink {
  return {
    log: silentLogger(),
    now: Date.now,
    output() {},
    ready: () => on.ready(),
    fatal() {},
    turnProgress() {},
    turnEnd: (e) => on.end(e),
    permission() {},
    permissionResolved() {},
    tool() {},
    usage() {},
    choices() {},
    failed: (m) => on.failed(m),
    respawn() {},
  };
}

const chunk = (params: unknown, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ jsonrpc: '2.0', method: 'session/update', params, ...extra });

/** A session/update that is reply text for our session, and the text it adds. */
const good = fc
  .string({ maxLength: 30, unit: fc.constantFrom('a', 'é', '👍', '\n', ' ', '"', '\\', '{') })
  .map((text) => ({
    frame: chunk({
      sessionId: SESSION,
      update: { sessionUpdate: 'agent_message_chunk', content: { type: 'text', text } },
    }),
    text,
  }));

/** Frames shaped like reply text that are not: none of them may reach the reply, nor stop the turn. */
const bad = fc
  .oneof(
    fc.constant(
      chunk({
        sessionId: 'other',
        update: { sessionUpdate: 'agent_message_chunk', content: { type: 'text', text: 'X' } },
      }),
    ),
    fc.constant(chunk({ sessionId: SESSION, update: { sessionUpdate: 'agent_message_chunk' } })),
    fc.constant(
      chunk({
        sessionId: SESSION,
        update: { sessionUpdate: 'agent_message_chunk', content: { type: 'image', data: 'X' } },
      }),
    ),
    fc.constant(
      chunk({
        sessionId: SESSION,
        update: { sessionUpdate: 'agent_message_chunk', content: { type: 'text', text: 7 } },
      }),
    ),
    fc.constant(
      chunk({ sessionId: SESSION, update: { sessionUpdate: 'agent_message_chunk', content: null } }),
    ),
    fc.constant(chunk(null)),
    fc.constant(chunk('text')),
    fc.constant(chunk({ sessionId: SESSION, update: null })),
    fc.constant(
      chunk({
        sessionId: SESSION,
        update: { sessionUpdate: 'agent_thought_chunk', content: { type: 'text', text: 'X' } },
      }),
    ),
    fc.anything().map((params) => chunk(params)),
  )
  .map((frame) => ({ frame, text: '' }));

describe('ACP reply text path', () => {
  // The SDK prints each frame it rejects (the malformed ones that are not reply text go to it): expected here.
  beforeEach(() => {
    vi.spyOn(console, 'error').mockImplementation(() => undefined);
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('whatever frames come before the answer, the reply is exactly the text of the well-formed chunks for this session, in order', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(good, bad), { maxLength: 25 }),
        fc.boolean(),
        async (frames, oneWrite) => {
          const t = new AcpTransport({ cwd: '/', trustAllTools: false, loadTimeoutMs: 1000 });
          const failures: string[] = [];
          let ready!: () => void;
          const isReady = new Promise<void>((r) => (ready = r));
          let ended!: (e: TurnEnd) => void;
          const end = new Promise<TurnEnd>((r) => (ended = r));
          t.attach(
            wire(() => frames.map((f) => f.frame), oneWrite),
            sink({ ready, end: (e) => ended(e), failed: (m) => failures.push(m) }),
          );
          await isReady;
          t.beginTurn(1, { text: 'go' });
          const result = await end;
          t.dispose();
          expect(failures).toEqual([]);
          expect(result.stopReason).toBe('end_turn');
          expect(result.text).toBe(
            frames
              .map((f) => f.text)
              .join('')
              .replace(/\s+$/, ''),
          );
        },
      ),
      { numRuns: 150 },
    );
  });
});
