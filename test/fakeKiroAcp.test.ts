import { rmSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { readProc } from '../src/process/procfs.js';
import { alive, expectAllGone, identify, killAll, type Pid } from './helpers/processes.js';
import { RawAcp } from './helpers/rawAcp.js';
import { waitFor } from './helpers/wait.js';

// The fake `kiro-cli acp` must speak what shared/kiro-acp.md says the real one speaks, with its process tree.
// Driven with raw NDJSON over real pipes by a hand-written client (helpers/rawAcp.ts), never the SDK.

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const started: RawAcp[] = [];
/** Pids seen during the test (trees, MCP servers, escapers): all must be gone after it. */
const seen: Pid[] = [];

function fake(opts: ConstructorParameters<typeof RawAcp>[0] = {}): RawAcp {
  const f = new RawAcp(opts);
  started.push(f);
  seen.push(...identify([f.pid]));
  return f;
}

/** Remembers the fake's whole tree now, so the end of the test can prove every one of them gone. */
function snapshot(f: RawAcp): Pid[] {
  const t = f.tree();
  seen.push(...t);
  return t;
}

/** Closes stdin like a client that is done; the fake exits 0 and leaves no process behind. */
async function endByEof(f: RawAcp): Promise<void> {
  const tree = snapshot(f);
  f.end();
  expect(await f.exited()).toEqual({ code: 0, signal: null });
  await expectAllGone(tree);
}

afterEach(async () => {
  for (const f of started) {
    f.destroy();
    seen.push(...f.tree());
  }
  // Anything left is a leak of the fake: kill it (only pids this test started), then fail the test.
  const left = alive(seen);
  await killAll(seen);
  for (const f of started.splice(0)) rmSync(f.home, { recursive: true, force: true });
  seen.length = 0;
  expect(
    left.map((p) => p.pid),
    'processes left by the fake',
  ).toEqual([]);
});

const INIT_V2 = {
  protocolVersion: 1,
  agentCapabilities: {
    loadSession: true,
    promptCapabilities: { image: true, audio: false, embeddedContext: false },
    mcpCapabilities: { http: true, sse: false },
    sessionCapabilities: {},
  },
  authMethods: [],
  agentInfo: { name: 'Kiro CLI Agent', title: 'Kiro CLI Agent', version: '2.1.0' },
};

describe('fake kiro-cli acp: handshake and sessions', () => {
  it('initialize answers §2’s body exactly, key order jsonrpc,result,id, nothing else on stdout', async () => {
    const f = fake();
    const r = await f.initialize();
    expect(r.result).toEqual(INIT_V2);
    expect(f.lines[0]).toBe(`{"jsonrpc":"2.0","result":${JSON.stringify(INIT_V2)},"id":1}`);
    await endByEof(f);
    expect(f.garbage).toEqual([]);
    expect(f.partial).toBe('');
  });

  it('logged out: authMethods offers kiro-login, and a prompt fails -32603', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_LOGGED_OUT: '1' } });
    const sid = await f.start();
    const init = f.frames.find((x) => x.id === 1)!;
    expect(init.result.authMethods).toEqual([
      {
        id: 'kiro-login',
        name: 'Kiro Login',
        description:
          "Run 'kiro-cli login' in terminal to authenticate. See https://kiro.dev/docs/cli/authentication/",
      },
    ]);
    const t = await f.prompt(sid, 'hello');
    expect(t.response.error).toMatchObject({ code: -32603, message: 'Internal error' });
    expect(t.response.error.data).toMatch(/login/);
    await endByEof(f);
  });

  it('session/new: mcp/server_initialized…, metadata, subagent/list_update, result, commands/available; UUID v4', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_MCP: '2' } });
    await f.initialize();
    const from = f.frames.length;
    const id = f.call('session/new', { cwd: f.home, mcpServers: [] });
    await f.waitFrame((x) => x.method === '_kiro.dev/commands/available', 'commands/available', from);
    const seq = f.frames.slice(from).map((x) => x.method ?? `result ${x.id}`);
    expect(seq).toEqual([
      '_kiro.dev/mcp/server_initialized',
      '_kiro.dev/mcp/server_initialized',
      '_kiro.dev/metadata',
      '_kiro.dev/subagent/list_update',
      `result ${id}`,
      '_kiro.dev/commands/available',
    ]);
    const result = f.frames.find((x) => x.id === id)!.result;
    expect(result.sessionId).toMatch(UUID_V4);
    expect(Object.keys(result)).toEqual(['sessionId', 'modes', 'models']);
    expect(result.modes.currentModeId).toBe('kiro_default');
    expect(result.modes.availableModes[0]).toMatchObject({ id: 'kiro_default', name: 'kiro_default' });
    expect(result.models.currentModelId).toBe('auto');
    expect(result.models.availableModels[0]).toEqual(
      expect.objectContaining({ modelId: 'auto', name: 'auto' }),
    );
    expect(f.frames[from + 3]!.params).toEqual({ subagents: [], pendingStages: [] });
    expect(f.frames[from]!.params).toEqual({ sessionId: result.sessionId, serverName: 'fake-mcp-1' });
    await endByEof(f);
  });

  it('session/new waits KIRO_FAKE_ACP_NEW_DELAY_MS; initialize waits KIRO_FAKE_ACP_INIT_DELAY_MS', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_NEW_DELAY_MS: '300', KIRO_FAKE_ACP_INIT_DELAY_MS: '200' } });
    let t0 = performance.now();
    await f.initialize();
    expect(performance.now() - t0).toBeGreaterThanOrEqual(195);
    t0 = performance.now();
    await f.request('session/new', { cwd: f.home, mcpServers: [] });
    expect(performance.now() - t0).toBeGreaterThanOrEqual(295);
    await endByEof(f);
  });

  it('session/new without cwd or mcpServers is refused with -32602', async () => {
    const f = fake();
    await f.initialize();
    const r = await f.request('session/new', { cwd: f.home });
    expect(r.error).toMatchObject({ code: -32602 });
    await endByEof(f);
  });
});

describe('fake kiro-cli acp: turns', () => {
  it('a text turn: chunks, then _kiro.dev/metadata (credits, context %, duration), then {stopReason:end_turn}', async () => {
    const f = fake();
    const sid = await f.start();
    const t = await f.prompt(sid, 'hello agent, this reply is long enough for two chunks');
    expect(t.response.result).toEqual({ stopReason: 'end_turn' });
    expect(t.text).toBe('You said: hello agent, this reply is long enough for two chunks');
    const chunks = t.updates.filter((u) => u.sessionUpdate === 'agent_message_chunk');
    expect(chunks.length).toBeGreaterThan(1);
    expect(chunks[0]).toEqual({
      sessionUpdate: 'agent_message_chunk',
      content: { type: 'text', text: expect.any(String) },
    });
    const kinds = t.frames.map((x) => x.method ?? 'result');
    expect(kinds.slice(-2)).toEqual(['_kiro.dev/metadata', 'result']);
    const meta = t.frames.at(-2)!.params;
    expect(Object.keys(meta)).toEqual([
      'sessionId',
      'contextUsagePercentage',
      'meteringUsage',
      'turnDurationMs',
    ]);
    expect(meta).toMatchObject({
      sessionId: sid,
      meteringUsage: [{ value: 0.04, unit: 'credit', unitPlural: 'credits' }],
    });
    expect(meta.contextUsagePercentage).toBeGreaterThan(0);
    expect(meta.turnDurationMs).toBeGreaterThanOrEqual(0);
    expect(f.lines.at(-1)).toBe(`{"jsonrpc":"2.0","result":{"stopReason":"end_turn"},"id":3}`);
    await endByEof(f);
  });

  it('session/cancel ends a hanging turn with cancelled at once; the session takes the next prompt', async () => {
    const f = fake();
    const sid = await f.start();
    const id = f.call('session/prompt', { sessionId: sid, prompt: [{ type: 'text', text: 'fake:hang' }] });
    // Busy: a second prompt is refused with kiro's exact shape.
    const busy = await f.request('session/prompt', { sessionId: sid, prompt: [{ type: 'text', text: 'x' }] });
    expect(busy.error).toEqual({
      code: -32603,
      message: 'Internal error',
      data: 'Prompt already in progress',
    });
    const t0 = performance.now();
    f.notify('session/cancel', { sessionId: sid });
    expect((await f.response(id)).result).toEqual({ stopReason: 'cancelled' });
    expect(performance.now() - t0).toBeLessThan(500);
    expect((await f.prompt(sid, 'after')).text).toBe('You said: after');
    await endByEof(f);
  });

  it('an unknown session id: "No session found with id", -32603', async () => {
    const f = fake();
    await f.start();
    const r = await f.request('session/prompt', { sessionId: 'nope', prompt: [{ type: 'text', text: 'x' }] });
    expect(r.error).toMatchObject({ code: -32603, message: 'Internal error' });
    expect(r.error.data).toMatch(/^No session found with id/);
    await endByEof(f);
  });
});

describe('fake kiro-cli acp: ending', () => {
  it('SIGTERM to the chat: exit 0 soon, MCP servers gone', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_MCP: '2' } });
    await f.start();
    const chat = await f.chat();
    const tree = snapshot(f);
    expect(tree.map((p) => readProc(p.pid)?.comm).sort()).toEqual([
      'fake-mcp',
      'fake-mcp',
      'kiro-cli',
      'kiro-cli-chat',
    ]);
    process.kill(chat.pid, 'SIGTERM');
    expect(await f.exited()).toEqual({ code: 0, signal: null });
    await expectAllGone(tree);
  });

  it('the wrapper dies on SIGTERM, the chat survives it (not forwarded) and exits 0 at stdin EOF', async () => {
    const f = fake({ fifoStdin: true });
    const sid = await f.start();
    const chat = await f.chat();
    const wrapper = readProc(f.pid)!;
    expect(wrapper.comm).toBe('kiro-cli');
    expect(chat.ppid).toBe(f.pid);
    process.kill(f.pid, 'SIGTERM');
    expect((await f.exited()).signal).toBe('SIGTERM');
    // The orphan still answers on the same pipes.
    expect(readProc(chat.pid)?.state).not.toBe('Z');
    expect((await f.prompt(sid, 'still here')).text).toBe('You said: still here');
    const tree = identify([chat.pid, ...f.tree().map((p) => p.pid)]);
    seen.push(...tree);
    f.end();
    await expectAllGone(tree);
  });

  it('MCP-like children: each its own process group in the chat’s session', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_MCP: '3' } });
    await f.start();
    const chat = await f.chat();
    const mcps = await waitFor(() => {
      const m = f
        .tree()
        .map((p) => readProc(p.pid)!)
        .filter((p) => p.comm === 'fake-mcp');
      return m.length === 3 ? m : undefined;
    }, 'three MCP servers');
    for (const m of mcps) {
      expect(m.pgid).toBe(m.pid);
      expect(m.sid).toBe(chat.sid);
      expect(m.ppid).toBe(chat.pid);
    }
    await endByEof(f);
  });
});
