import { createHash } from 'node:crypto';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { readProc } from '../src/process/procfs.js';
import { alive, expectAllGone, identify, killAll, type Pid } from './helpers/processes.js';
import { alivePid, type Frame, RawAcp, turnOf } from './helpers/rawAcp.js';
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

  it('KIRO_FAKE_ACP_AUTH_ALWAYS lists kiro-login while logged in (newer kiro), and prompts still work', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_AUTH_ALWAYS: '1' } });
    const sid = await f.start();
    expect(f.frames.find((x) => x.id === 1)!.result.authMethods.map((m: Frame) => m.id)).toEqual([
      'kiro-login',
    ]);
    expect((await f.prompt(sid, 'hi')).text).toBe('You said: hi');
    await endByEof(f);
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

  it('a group SIGTERM (kill -TERM -pgid) ends wrapper and chat, and the chat stops its MCP servers; a group SIGKILL orphans them', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_MCP: '2' } });
    await f.start();
    const tree = snapshot(f);
    expect(tree).toHaveLength(4);
    process.kill(-f.pid, 'SIGTERM');
    await f.exited();
    await expectAllGone(tree);
    const g = fake({ env: { KIRO_FAKE_ACP_MCP: '2', THREADWARDEN_MARKER: 'tw-fake-acp-test' } });
    await g.start();
    const tree2 = snapshot(g);
    const mcps = tree2.filter((p) => readProc(p.pid)?.comm === 'fake-mcp');
    // Every process inherits the environment intact (no process title overwrites it), so the bot's marker reaches all.
    for (const m of tree2)
      expect(readFileSync(`/proc/${m.pid}/environ`, 'utf8')).toContain(
        'THREADWARDEN_MARKER=tw-fake-acp-test',
      );
    process.kill(-g.pid, 'SIGKILL');
    expect((await g.exited()).signal).toBe('SIGKILL');
    await expectAllGone(tree2.filter((p) => !mcps.includes(p)));
    // Not in the killed group: they live on, as kiro's MCP servers do (K#6050); only a tree kill by marker finds them.
    expect(alive(mcps)).toHaveLength(2);
    await killAll(mcps);
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

/** The fake's record of what ran ($HOME/.kiro/fake-acp/record.jsonl), one object per line. */
function record(f: RawAcp): Frame[] {
  try {
    return readFileSync(join(f.home, '.kiro', 'fake-acp', 'record.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Frame);
  } catch {
    return [];
  }
}
/** The turn of prompt `id`: its frames from index `from`, read only once its response is in. */
async function turnAfter(f: RawAcp, from: number, id: number) {
  const response = await f.response(id);
  return turnOf(f.frames.slice(from), response);
}
const ran = (f: RawAcp) => record(f).filter((e) => e.event === 'command' || e.event === 'tool');

describe('fake kiro-cli acp: permissions', () => {
  it('a tool call asks with a numeric id and §5’s options; allow_once runs it, reject_once fails it', async () => {
    const f = fake();
    const sid = await f.start();
    const from = f.frames.length;
    const id = f.call('session/prompt', {
      sessionId: sid,
      prompt: [{ type: 'text', text: 'fake:tool pwd' }],
    });
    const ask = await f.waitRequest('session/request_permission', from);
    expect(typeof ask.id).toBe('number');
    expect(f.lines.find((l) => l.includes('session/request_permission'))).toMatch(
      /^\{"jsonrpc":"2\.0","id":\d+,"method":"session\/request_permission","params":/,
    );
    const call = f.frames.slice(from).find((x) => x.params?.update?.sessionUpdate === 'tool_call')!
      .params.update;
    expect(call).toMatchObject({
      title: 'Running: pwd',
      kind: 'execute',
      status: 'pending',
      rawInput: { command: 'pwd' },
    });
    expect(call.toolCallId).toMatch(/^tooluse_/);
    expect(ask.params).toMatchObject({
      sessionId: sid,
      toolCall: { toolCallId: call.toolCallId, title: 'Running: pwd' },
    });
    expect(ask.params.options).toEqual([
      { optionId: 'allow_once', name: 'Yes', kind: 'allow_once' },
      { optionId: 'allow_always', name: 'Always', kind: 'allow_always' },
      { optionId: 'reject_once', name: 'No', kind: 'reject_once' },
    ]);
    expect(ask.params._meta.trustOptions).toEqual(expect.any(Array));
    f.answer(ask.id, { outcome: { outcome: 'selected', optionId: 'allow_once' } });
    const done = await f.response(id);
    expect(done.result).toEqual({ stopReason: 'end_turn' });
    const updates = f.frames
      .slice(from)
      .filter((x) => x.params?.update?.sessionUpdate === 'tool_call_update');
    expect(updates.at(-1)!.params.update).toMatchObject({
      status: 'completed',
      rawOutput: { items: [{ Text: f.home }] },
    });
    expect(ran(f)).toEqual([expect.objectContaining({ event: 'tool', command: 'pwd' })]);
    // Rejected: the tool fails, nothing runs, the turn still ends normally.
    const fromNo = f.frames.length;
    const no = f.call('session/prompt', {
      sessionId: sid,
      prompt: [{ type: 'text', text: 'fake:tool rm -rf x' }],
    });
    const ask2 = await f.waitRequest('session/request_permission', fromNo);
    expect(ask2.id).toBe(ask.id + 1);
    f.answer(ask2.id, { outcome: { outcome: 'selected', optionId: 'reject_once' } });
    expect((await f.response(no)).result).toEqual({ stopReason: 'end_turn' });
    const failed = f.frames
      .slice(fromNo)
      .filter((x) => x.params?.update?.sessionUpdate === 'tool_call_update');
    expect(failed.at(-1)!.params.update.status).toBe('failed');
    expect(ran(f)).toHaveLength(1);
    await endByEof(f);
  });

  it('an answer `cancelled` cancels the turn; allow_always stops the asking for the session', async () => {
    const f = fake();
    const sid = await f.start();
    let from = f.frames.length;
    const id = f.call('session/prompt', { sessionId: sid, prompt: [{ type: 'text', text: 'fake:tool' }] });
    f.answer((await f.waitRequest('session/request_permission', from)).id, {
      outcome: { outcome: 'cancelled' },
    });
    expect((await f.response(id)).result).toEqual({ stopReason: 'cancelled' });
    from = f.frames.length;
    const id2 = f.call('session/prompt', { sessionId: sid, prompt: [{ type: 'text', text: 'fake:tool' }] });
    f.answer((await f.waitRequest('session/request_permission', from)).id, {
      outcome: { outcome: 'selected', optionId: 'allow_always' },
    });
    expect((await f.response(id2)).result).toEqual({ stopReason: 'end_turn' });
    from = f.frames.length;
    const t = await f.prompt(sid, 'fake:tool');
    expect(t.text).toBe(`Ran pwd: ${f.home}`);
    expect(f.frames.slice(from).some((x) => x.method === 'session/request_permission')).toBe(false);
    await endByEof(f);
  });

  it('session/cancel with a question open: cancelled at once; the late answer is recorded, nothing runs', async () => {
    const f = fake();
    const sid = await f.start();
    const from = f.frames.length;
    const id = f.call('session/prompt', { sessionId: sid, prompt: [{ type: 'text', text: 'fake:tool' }] });
    const ask = await f.waitRequest('session/request_permission', from);
    f.notify('session/cancel', { sessionId: sid });
    expect((await f.response(id)).result).toEqual({ stopReason: 'cancelled' });
    f.answer(ask.id, { outcome: { outcome: 'cancelled' } });
    await waitFor(() => record(f).find((e) => e.event === 'late-answer'), 'the late answer in the record');
    expect(record(f).find((e) => e.event === 'late-answer')).toMatchObject({
      id: ask.id,
      response: { outcome: { outcome: 'cancelled' } },
    });
    expect(ran(f)).toEqual([]);
    await endByEof(f);
  });

  it('-a never asks; fake:storm N sends N requests at once and counts the answers', async () => {
    const trusted = fake({ args: ['acp', '-a'] });
    const s1 = await trusted.start();
    const t = await trusted.prompt(s1, 'fake:tool');
    expect(t.text).toBe(`Ran pwd: ${trusted.home}`);
    expect(trusted.frames.some((x) => x.method === 'session/request_permission')).toBe(false);
    await endByEof(trusted);
    const f = fake();
    const sid = await f.start();
    const from = f.frames.length;
    const id = f.call('session/prompt', {
      sessionId: sid,
      prompt: [{ type: 'text', text: 'fake:storm 50' }],
    });
    const asks = await waitFor(() => {
      const a = f.frames.slice(from).filter((x) => x.method === 'session/request_permission');
      return a.length === 50 ? a : undefined;
    }, '50 permission requests');
    expect(new Set(asks.map((a) => a.id)).size).toBe(50);
    asks.forEach((a, i) => {
      f.answer(a.id, { outcome: { outcome: 'selected', optionId: i % 2 ? 'reject_once' : 'allow_once' } });
    });
    const res = await f.response(id);
    expect(res.result).toEqual({ stopReason: 'end_turn' });
    const text = turnOf(f.frames.slice(from), res).text;
    expect(text).toBe('storm: 50 requests, 25 allowed, 25 rejected, 0 cancelled');
    await endByEof(f);
  });
});

describe('fake kiro-cli acp: user text and kiro commands', () => {
  it('/tools trust-all runs as a command: one chunk, end_turn, trust flipped and recorded', async () => {
    const f = fake();
    const sid = await f.start();
    const t = await f.prompt(sid, '/tools trust-all');
    expect(t.response.result).toEqual({ stopReason: 'end_turn' });
    const chunks = t.updates.filter((u) => u.sessionUpdate === 'agent_message_chunk');
    expect(chunks).toHaveLength(1);
    expect(t.text).toBe(
      'All tools are now trusted for this session. Tools will run without approval prompts.',
    );
    // Commands bypass kiro's agent loop: no metadata frame.
    expect(t.frames.map((x) => x.method ?? 'result')).toEqual(['session/update', 'result']);
    expect(ran(f)).toEqual([
      expect.objectContaining({ event: 'command', command: 'tools', args: 'trust-all' }),
    ]);
    const trust = JSON.parse(readFileSync(join(f.home, '.kiro', 'fake-acp', `trust-${sid}.json`), 'utf8'));
    expect(trust).toEqual({ trustAll: true, trustedTools: [] });
    expect((await f.prompt(sid, 'fake:state')).text).toMatch(/^trust all=true/);
    await endByEof(f);
  });

  it('kiro’s router: any text block, Unicode-trimmed, starting with / runs it; !, @, unknown /x and a zero-width prefix reach the model', async () => {
    const f = fake();
    const sid = await f.start();
    const second = await f.prompt(sid, [
      { type: 'text', text: 'User says:' },
      { type: 'text', text: ' \u2003\n/tools trust-all' },
    ]);
    expect(second.text).toMatch(/^All tools are now trusted/);
    await f.prompt(sid, '/tools reset');
    expect(ran(f).map((e) => e.args)).toEqual(['trust-all', 'reset']);
    for (const text of [
      '!rm -rf /',
      '@kiro /tools trust-all',
      '/nonexistent thing',
      '\u200b/tools trust-all',
      'say /tools trust-all',
    ]) {
      const t = await f.prompt(sid, text);
      expect(t.text, text).toBe(`You said: ${text}`);
    }
    expect(ran(f)).toHaveLength(2);
    expect((await f.prompt(sid, 'fake:state')).text).toMatch(/^trust all=false tools=-/);
    // /exit is acknowledged, not obeyed: the process stays.
    expect((await f.prompt(sid, '/exit')).text).toBe('Exiting');
    expect(f.exit).toBeUndefined();
    await endByEof(f);
  });

  it('_kiro.dev/commands/execute runs a command by request ({success,message})', async () => {
    const f = fake();
    const sid = await f.start();
    const r = await f.request('_kiro.dev/commands/execute', {
      sessionId: sid,
      command: { command: 'model', args: { modelName: 'claude-haiku-4.5' } },
    });
    expect(r.result).toEqual({ success: true, message: 'Model changed to claude-haiku-4.5' });
    expect((await f.prompt(sid, 'fake:state')).text).toContain('model=claude-haiku-4.5');
    await endByEof(f);
  });
});

describe('fake kiro-cli acp: models, modes and unknown methods', () => {
  it('set_model/set_mode answer {}; set_config_option and unknown methods -32601; a bad model fails the next prompt', async () => {
    const f = fake({ args: ['acp', '--agent', 'reviewer'] });
    await f.initialize();
    const n = await f.request('session/new', { cwd: f.home, mcpServers: [] });
    const sid = n.result.sessionId as string;
    expect(n.result.modes.currentModeId).toBe('reviewer');
    expect(n.result.modes.availableModes.map((m: Frame) => m.id)).toContain('reviewer');
    expect((await f.request('session/set_mode', { sessionId: sid, modeId: 'kiro_planner' })).result).toEqual(
      {},
    );
    expect(
      (await f.request('session/set_model', { sessionId: sid, modelId: 'claude-opus-4.5' })).result,
    ).toEqual({});
    expect((await f.prompt(sid, 'fake:state')).text).toContain('model=claude-opus-4.5 mode=kiro_planner');
    const cfg = await f.request('session/set_config_option', {
      sessionId: sid,
      configId: 'mode',
      value: 'x',
    });
    expect(cfg.error).toEqual({ code: -32601, message: 'Method not found' });
    expect((await f.request('no/such', {})).error).toEqual({ code: -32601, message: 'Method not found' });
    // A session/cancel sent as a request is no cancel.
    expect((await f.request('session/cancel', { sessionId: sid })).error.code).toBe(-32601);
    expect((await f.request('session/set_model', { sessionId: sid, modelId: 'gpt-nope' })).result).toEqual(
      {},
    );
    const bad = await f.prompt(sid, 'hello');
    expect(bad.response.error).toMatchObject({ code: -32603, message: 'Internal error' });
    expect(bad.response.error.data).toContain('gpt-nope');
    await endByEof(f);
  });
});

describe('fake kiro-cli acp: stored sessions and session/load', () => {
  const load = (f: RawAcp, sessionId: string) =>
    f.call('session/load', { sessionId, cwd: f.home, mcpServers: [] });

  it('stores <id>.json, .jsonl and .lock under $HOME; a new process loads it: history replayed, then {modes,models}', async () => {
    const a = fake({ args: ['acp', '-a'] });
    const sid = await a.start();
    const dir = join(a.home, '.kiro', 'sessions', 'cli');
    expect(JSON.parse(readFileSync(join(dir, `${sid}.lock`), 'utf8'))).toEqual({ pid: (await a.chat()).pid });
    await a.prompt(sid, 'first message');
    await a.prompt(sid, 'fake:tool');
    await endByEof(a);
    expect(existsSync(join(dir, `${sid}.json`))).toBe(true);
    expect(
      readFileSync(join(dir, `${sid}.jsonl`), 'utf8')
        .split('\n')
        .filter(Boolean).length,
    ).toBeGreaterThan(4);
    expect(existsSync(join(dir, `${sid}.lock`)), 'the lock is released at exit').toBe(false);

    const b = fake({ home: a.home });
    await b.initialize();
    const from = b.frames.length;
    const id = load(b, sid);
    const res = await b.response(id);
    expect(Object.keys(res.result)).toEqual(['modes', 'models']);
    const replay = b.frames
      .slice(from, b.frames.indexOf(res))
      .filter((x) => x.method === 'session/update')
      .map((x) => x.params.update as Frame);
    expect(replay.map((u) => u.sessionUpdate)).toEqual([
      'user_message_chunk',
      'agent_message_chunk',
      'user_message_chunk',
      'tool_call',
      'tool_call_update',
      'tool_call_update',
      'agent_message_chunk',
    ]);
    expect(replay[0]!.content).toEqual({ type: 'text', text: 'first message' });
    expect(replay[1]!.content).toEqual({ type: 'text', text: 'You said: first message' });
    expect(replay[3]).toMatchObject({ title: 'Running: pwd', kind: 'execute' });
    expect(replay[6]!.content.text).toBe(`Ran pwd: ${a.home}`);
    // kiro replays the history first, then starts the agent and its MCP servers.
    const order = b.frames.slice(from).map((x) => x.method);
    expect(order.lastIndexOf('session/update')).toBeLessThan(
      order.indexOf('_kiro.dev/mcp/server_initialized'),
    );
    expect((await b.prompt(sid, 'fake:history')).text).toBe('first message\nfake:tool\nfake:history');
    await endByEof(b);
  });

  it('an unknown id, by KIRO_FAKE_ACP_LOAD_MISSING: error (2.2.1), hang (1.28.1), exit 0 (2.4.0)', async () => {
    const missing = '0b6c9f0e-8a57-4c4c-9d2a-6c1e2f3a4b5c';
    const e = fake();
    await e.initialize();
    expect((await e.response(load(e, missing))).error).toEqual({
      code: -32603,
      message: 'Internal error',
      data: `Failed to start session: Session not found: ${missing}`,
    });
    await endByEof(e);
    const h = fake({ env: { KIRO_FAKE_ACP_LOAD_MISSING: 'hang' } });
    await h.initialize();
    const id = load(h, missing);
    await waitFor(() => record(h).find((x) => x.event === 'load-missing'), 'the fake to see the load');
    // No answer can only be shown over a window; the process stays and still answers other requests.
    expect((await h.request('no/such', {})).error.code).toBe(-32601);
    expect(h.frames.some((x) => x.id === id)).toBe(false);
    await endByEof(h);
    const x = fake({ env: { KIRO_FAKE_ACP_LOAD_MISSING: 'exit' } });
    await x.initialize();
    const tree = snapshot(x);
    load(x, missing);
    expect(await x.exited()).toEqual({ code: 0, signal: null });
    await expectAllGone(tree);
  });

  it('a lock held by a live process: "Session is active in another process (PID n)"; a dead holder’s lock is taken over unless STALE_LOCK=refuse', async () => {
    const a = fake();
    const sid = await a.start();
    const chat = await a.chat();
    const b = fake({ home: a.home });
    await b.initialize();
    expect((await b.response(load(b, sid))).error).toEqual({
      code: -32603,
      message: 'Internal error',
      data: `Failed to start session: Session is active in another process (PID ${chat.pid})`,
    });
    // a dies by SIGKILL: its lock stays behind, and its MCP server (own group) is orphaned, as with kiro.
    const mcp = snapshot(a).filter((p) => readProc(p.pid)?.comm === 'fake-mcp');
    expect(mcp).toHaveLength(1);
    a.call('session/prompt', { sessionId: sid, prompt: [{ type: 'text', text: 'fake:crash-signal' }] });
    await a.exited();
    await waitFor(() => !alivePid(chat.pid), 'the chat to die');
    expect(alive(mcp), 'the orphaned MCP server').toHaveLength(1);
    await killAll(mcp);
    const lock = join(a.home, '.kiro', 'sessions', 'cli', `${sid}.lock`);
    expect(JSON.parse(readFileSync(lock, 'utf8')).pid).toBe(chat.pid);
    const refuse = fake({ home: a.home, env: { KIRO_FAKE_ACP_STALE_LOCK: 'refuse' } });
    await refuse.initialize();
    expect((await refuse.response(load(refuse, sid))).error.data).toBe(
      `Failed to start session: Session is active in another process (PID ${chat.pid})`,
    );
    await endByEof(refuse);
    expect((await b.response(load(b, sid))).result).toHaveProperty('modes');
    expect(JSON.parse(readFileSync(lock, 'utf8')).pid).toBe((await b.chat()).pid);
    await endByEof(b);
  });
});

describe('fake kiro-cli acp: test behaviours', () => {
  it('fake:garbage writes non-protocol lines on stdout mid-turn; the turn then ends normally', async () => {
    const f = fake();
    const sid = await f.start();
    const t = await f.prompt(sid, 'fake:garbage');
    expect(t.text).toBe('after garbage');
    expect(f.garbage).toEqual(
      expect.arrayContaining([
        'this is not json',
        '{"jsonrpc":"2.0","method":"session/update","params":{"sessionId"',
        '[1,2,3]',
        '{"not":"json-rpc"}',
      ]),
    );
    await endByEof(f);
  });

  it('fake:split sends one frame in two writes cut inside a UTF-8 sequence, with a pause between', async () => {
    const f = fake();
    const sid = await f.start();
    const from = f.frames.length;
    const id = f.call('session/prompt', {
      sessionId: sid,
      prompt: [{ type: 'text', text: 'fake:split 300' }],
    });
    // The first half arrives and stays a partial line until the rest comes.
    await waitFor(() => f.partial.length > 0, 'the first half of the frame');
    expect(f.partial).toMatch(/^\{"jsonrpc":"2\.0","method":"session\/update"/);
    const res = await f.response(id);
    const t = turnOf(f.frames.slice(from), res);
    expect(t.text).toBe('split frame é👍');
    expect(f.garbage).toEqual([]);
    await endByEof(f);
  });

  it('fake:partial-exit: half a frame without its newline, then exit 1 with no answer', async () => {
    const f = fake();
    const sid = await f.start();
    const tree = snapshot(f);
    f.call('session/prompt', { sessionId: sid, prompt: [{ type: 'text', text: 'fake:partial-exit' }] });
    expect((await f.exited()).code).toBe(1);
    await waitFor(() => f.partial === '{"jsonrpc":"2.0","method":"session/update","par', 'the partial line');
    await killAll(tree.filter((p) => readProc(p.pid)?.comm === 'fake-mcp'));
  });

  it('fake:big sends one 8 MB agent_message_chunk', async () => {
    const f = fake();
    const sid = await f.start();
    const t = await f.prompt(sid, 'fake:big', 20_000);
    const chunks = t.updates.filter((u) => u.sessionUpdate === 'agent_message_chunk');
    const big = chunks[0]!.content.text as string;
    expect(big.length).toBeGreaterThanOrEqual(8 * 1024 * 1024);
    expect(f.lines.some((l) => l.length > 8 * 1024 * 1024)).toBe(true);
    const lines = big.split('\n').filter(Boolean);
    expect(lines.every((l, i) => l.startsWith(`big line ${String(i).padStart(9, '0')} `))).toBe(true);
    expect(t.text.endsWith(`big done: ${lines.length} lines`)).toBe(true);
    await endByEof(f);
  });

  it('fake:stream N: N chunks in order; fake:slow N MS spaces them; KIRO_FAKE_ACP_THINKING adds thought chunks', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_THINKING: '1' } });
    const sid = await f.start();
    const t = await f.prompt(sid, 'fake:stream 5000', 20_000);
    const chunks = t.updates.filter((u) => u.sessionUpdate === 'agent_message_chunk');
    expect(chunks).toHaveLength(5000);
    expect(chunks.every((c, i) => c.content.text === `chunk ${String(i).padStart(6, '0')}\n`)).toBe(true);
    expect(t.updates[0]!.sessionUpdate).toBe('agent_thought_chunk');
    const t0 = performance.now();
    const slow = await f.prompt(sid, 'fake:slow 3 150');
    expect(performance.now() - t0).toBeGreaterThanOrEqual(295);
    expect(slow.text).toBe('slow line 1 of 3\nslow line 2 of 3\nslow line 3 of 3\n');
    await endByEof(f);
  });

  it('fake:flood MB: every numbered 100-byte line in order, in chunks of about 64 KiB, then the done line', async () => {
    const f = fake();
    const sid = await f.start();
    const t = await f.prompt(sid, 'fake:flood 2', 20_000);
    expect(t.response.result).toEqual({ stopReason: 'end_turn' });
    const chunks = t.updates.filter((u) => u.sessionUpdate === 'agent_message_chunk');
    // Frames far below a client's line cap, many of them: a flood of ordinary frames, not one huge line.
    expect(chunks.length).toBeGreaterThanOrEqual(32);
    for (const c of chunks) expect((c.content.text as string).length).toBeLessThanOrEqual(66 * 1024);
    const numbers = [...t.text.matchAll(/^flood line (\d{9}) x{78}$/gm)].map((m) => Number(m[1]));
    expect(numbers).toEqual(numbers.map((_, i) => i));
    expect(numbers.length * 100).toBeGreaterThanOrEqual(2 * 1024 * 1024);
    expect(t.text.endsWith(`\nflood done: ${numbers.length} lines`)).toBe(true);
    await endByEof(f);
  });

  it('fake:silent MS: no frame for MS ms, then done; session/cancel ends it with cancelled at once', async () => {
    const f = fake();
    const sid = await f.start();
    let from = f.frames.length;
    const t0 = performance.now();
    let id = f.call('session/prompt', {
      sessionId: sid,
      prompt: [{ type: 'text', text: 'fake:silent 300' }],
    });
    const first = await f.waitFrame(
      (x) => x.method === 'session/update',
      'the first update of the turn',
      from,
    );
    expect(performance.now() - t0).toBeGreaterThanOrEqual(295);
    expect(first.params.update).toEqual({
      sessionUpdate: 'agent_message_chunk',
      content: { type: 'text', text: 'done' },
    });
    const t = turnOf(f.frames.slice(from), await f.response(id));
    expect(t.response.result).toEqual({ stopReason: 'end_turn' });
    expect(t.text).toBe('done');

    from = f.frames.length;
    id = f.call('session/prompt', { sessionId: sid, prompt: [{ type: 'text', text: 'fake:silent 60000' }] });
    const t1 = performance.now();
    f.notify('session/cancel', { sessionId: sid });
    const cancelled = await f.response(id);
    expect(cancelled.result).toEqual({ stopReason: 'cancelled' });
    expect(performance.now() - t1).toBeLessThan(500);
    expect(turnOf(f.frames.slice(from), cancelled).updates).toEqual([]);
    expect((await f.prompt(sid, 'after')).text).toBe('You said: after');
    await endByEof(f);
  });

  it('fake:echo reports the blocks received; fake:sha their digest; other reply text names attachments', async () => {
    const f = fake();
    const sid = await f.start();
    const blocks = [
      { type: 'text', text: 'fake:echo  two  spaces é' },
      { type: 'resource_link', uri: 'file:///w/a.txt', name: 'a.txt', mimeType: 'text/plain' },
    ];
    expect((await f.prompt(sid, blocks)).text).toBe(`received: ${JSON.stringify(blocks)}`);
    const body = ` ${'ü'.repeat(100_000)}\nend`;
    const digest = createHash('sha256').update(body, 'utf8').digest('hex');
    expect((await f.prompt(sid, `fake:sha${body}`)).text).toBe(`sha256 ${digest} chars ${body.length}`);
    const att = await f.prompt(sid, [
      { type: 'text', text: 'see file' },
      { type: 'resource_link', uri: 'file:///w/log.txt', name: 'log.txt' },
      { type: 'image', data: 'AAAA', mimeType: 'image/png' },
    ]);
    expect(att.text).toBe(
      'You said: see file\nattachments: resource_link log.txt file:///w/log.txt; image image/png 4b64',
    );
    await endByEof(f);
  });

  it('KIRO_FAKE_ACP_STDERR_NOISE and fake:stderr write noise to stderr only; stdout stays protocol', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_STDERR_NOISE: '1' } });
    const sid = await f.start();
    await f.prompt(sid, 'fake:stderr 50');
    expect(f.stderr).toMatch(/^\[INFO\] /m);
    expect(f.stderr.match(/^noise line \d+ /gm)).toHaveLength(50);
    expect(f.garbage).toEqual([]);
    await endByEof(f);
  });

  it('fake:exit, fake:crash, fake:crash-signal end the process mid-turn without an answer', async () => {
    for (const [word, code, signal] of [
      ['fake:exit', 0, null],
      ['fake:exit 7', 7, null],
      ['fake:crash', 1, null],
      ['fake:crash-signal', 137, null],
    ] as const) {
      const f = fake({ env: { KIRO_FAKE_ACP_MCP: '0' } });
      const sid = await f.start();
      const from = f.frames.length;
      const id = f.call('session/prompt', { sessionId: sid, prompt: [{ type: 'text', text: word }] });
      // The wrapper reports a chat killed by a signal as 128 + its number.
      expect(await f.exited(), word).toEqual({ code, signal });
      expect(
        f.frames.some((x) => x.id === id),
        word,
      ).toBe(false);
      expect(turnOf(f.frames.slice(from), {}).text, word).toBe('partial output');
    }
  });

  it('KIRO_FAKE_ACP_STARTUP: never-initialize stays silent, exit-at-once exits 3; a bad switch exits 2 naming it', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_STARTUP: 'never-initialize' } });
    const id = f.call('initialize', { protocolVersion: 1 });
    await waitFor(() => record(f).find((e) => e.event === 'initialize'), 'the fake to read initialize');
    expect((await f.request('no/such', {})).error.code).toBe(-32601);
    expect(f.frames.some((x) => x.id === id)).toBe(false);
    await endByEof(f);
    const gone = fake({ env: { KIRO_FAKE_ACP_STARTUP: 'exit-at-once' } });
    expect((await gone.exited()).code).toBe(3);
    expect(gone.lines).toEqual([]);
    const bad = fake({ env: { KIRO_FAKE_ACP_LOAD_MISSING: 'explode' } });
    expect((await bad.exited()).code).toBe(2);
    expect(bad.stderr).toContain(
      "KIRO_FAKE_ACP_LOAD_MISSING must be one of error, hang, exit, got 'explode'",
    );
    const typo = fake({ env: { KIRO_FAKE_ACP_NEW_DELAY: '5' } });
    expect((await typo.exited()).code).toBe(2);
    expect(typo.stderr).toContain('KIRO_FAKE_ACP_NEW_DELAY is not a switch');
  });

  it('the wrapper checks acp flags like clap (exit 2); --agent-engine v3 refuses --model and drops agentInfo', async () => {
    for (const args of [
      ['acp', '--bogus'],
      ['acp', '--model'],
      ['acp', '--agent-engine', 'v9'],
      ['acp', '--agent-engine', 'v3', '--model', 'x'],
    ]) {
      const f = fake({ args });
      expect((await f.exited()).code, args.join(' ')).toBe(2);
      expect(f.stderr, args.join(' ')).toMatch(/^error: /);
    }
    const v3 = fake({ args: ['acp', '--agent-engine', 'v3'], env: { KIRO_FAKE_ACP_LOGGED_OUT: '1' } });
    const init = await v3.initialize();
    expect(init.result.agentInfo).toBeUndefined();
    expect(init.result.authMethods.map((m: Frame) => m.id)).toEqual([
      'aws-builder-id',
      'aws-iam-identity-center',
    ]);
    await endByEof(v3);
  });

  it('SIGTERM ignored with KIRO_FAKE_IGNORE_TERM or fake:ignore-term; EOF ignored with KIRO_FAKE_ACP_IGNORE_EOF', async () => {
    const f = fake({ env: { KIRO_FAKE_IGNORE_TERM: '1' } });
    const sid = await f.start();
    const chat = await f.chat();
    process.kill(chat.pid, 'SIGTERM');
    await waitFor(() => f.stderr.includes('SIGTERM ignored'), 'the chat to see SIGTERM');
    expect((await f.prompt(sid, 'after TERM')).text).toBe('You said: after TERM');
    await endByEof(f);
    const g = fake();
    const s2 = await g.start();
    const chat2 = await g.chat();
    expect((await g.prompt(s2, 'fake:ignore-term')).text).toBe('ignoring SIGTERM');
    process.kill(chat2.pid, 'SIGTERM');
    await waitFor(() => g.stderr.includes('SIGTERM ignored'), 'the chat to see SIGTERM');
    await endByEof(g);
    const h = fake({ fifoStdin: true, env: { KIRO_FAKE_ACP_IGNORE_EOF: '1' } });
    await h.start();
    const chat3 = await h.chat();
    const tree = snapshot(h);
    h.end();
    await waitFor(() => h.stderr.includes('stdin EOF ignored'), 'the chat to see EOF');
    expect(alivePid(chat3.pid)).toBe(true);
    process.kill(chat3.pid, 'SIGTERM');
    expect(await h.exited()).toEqual({ code: 0, signal: null });
    await expectAllGone(tree);
  });

  it('exit waits KIRO_FAKE_ACP_EXIT_DELAY_MS after EOF', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_EXIT_DELAY_MS: '400' } });
    await f.start();
    const t0 = performance.now();
    await endByEof(f);
    expect(performance.now() - t0).toBeGreaterThanOrEqual(395);
  });

  it('fake:spawn: setsid and doublefork escape the session, group gets its own group, many 100 stay children', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_MCP: '0' } });
    const sid = await f.start();
    const chat = await f.chat();
    const pids = async (word: string) => {
      const text = (await f.prompt(sid, word, 10_000)).text;
      const m = /^spawned \S+ ([\d ]+)$/.exec(text);
      if (!m) throw new Error(`no pids in ${JSON.stringify(text)}`);
      const list = m[1]!.split(' ').map(Number);
      seen.push(...identify(list));
      return list;
    };
    const [setsid] = await pids('fake:spawn setsid');
    const [orphan] = await pids('fake:spawn doublefork');
    const [group] = await pids('fake:spawn group');
    const many = await pids('fake:spawn many 100');
    expect(readProc(setsid!)!.sid).toBe(setsid);
    expect(readProc(orphan!)!.ppid).not.toBe(chat.pid);
    expect(readProc(group!)).toMatchObject({ pgid: group, sid: chat.sid });
    expect(many).toHaveLength(100);
    for (const pid of many) expect(readProc(pid)).toMatchObject({ ppid: chat.pid, pgid: chat.pgid });
    // The escapers outlive the chat; the test kills them (afterEach proves every pid gone).
    const escapers = identify([setsid!, orphan!, group!, ...many]);
    f.end();
    await f.exited();
    await killAll(escapers);
  });

  it('S→C requests: fake:unknown-request and fake:shell-type report the client’s answer, or its absence', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_REQUEST_TIMEOUT_MS: '300' } });
    const sid = await f.start();
    let from = f.frames.length;
    let id = f.call('session/prompt', {
      sessionId: sid,
      prompt: [{ type: 'text', text: 'fake:unknown-request' }],
    });
    const req = await f.waitRequest('_kiro.dev/fake/unknown_request', from);
    f.send({ jsonrpc: '2.0', error: { code: -32601, message: 'Method not found' }, id: req.id });
    expect((await turnAfter(f, from, id)).text).toBe(
      'answer to _kiro.dev/fake/unknown_request: {"error":{"code":-32601,"message":"Method not found"}}',
    );
    from = f.frames.length;
    id = f.call('session/prompt', { sessionId: sid, prompt: [{ type: 'text', text: 'fake:shell-type' }] });
    const ask = await f.waitRequest('_kiro/terminal/shell_type', from);
    expect(ask.params).toEqual({ sessionId: sid });
    f.answer(ask.id, { shellType: 'bash' });
    expect((await turnAfter(f, from, id)).text).toBe(
      'answer to _kiro/terminal/shell_type: {"result":{"shellType":"bash"}}',
    );
    const silent = await f.prompt(sid, 'fake:unknown-request');
    expect(silent.text).toBe('no answer to _kiro.dev/fake/unknown_request within 300 ms');
    await endByEof(f);
  });

  it('KIRO_FAKE_ACP_SHELL_TYPE: session/new waits for the shell type; an answer without it stalls session/new', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_SHELL_TYPE: '1' } });
    await f.initialize();
    const id = f.call('session/new', { cwd: f.home, mcpServers: [] });
    const ask = await f.waitRequest('_kiro/terminal/shell_type');
    f.answer(ask.id, { shellType: 'bash' });
    expect((await f.response(id)).result.sessionId).toMatch(UUID_V4);
    const id2 = f.call('session/new', { cwd: f.home, mcpServers: [] });
    const ask2 = await f.waitFrame(
      (x) => x.method === '_kiro/terminal/shell_type' && x.id !== ask.id,
      'second ask',
    );
    f.answer(ask2.id, {});
    await waitFor(() => f.stderr.includes('stalls'), 'the stall');
    expect(f.frames.some((x) => x.id === id2 && x.method === undefined)).toBe(false);
    await endByEof(f);
  });

  it('fake:stop REASON, two metadata frames, commands before the result, no credits', async () => {
    const f = fake({
      env: {
        KIRO_FAKE_ACP_METADATA_FRAMES: '2',
        KIRO_FAKE_ACP_COMMANDS_FIRST: '1',
        KIRO_FAKE_NO_CREDITS: '1',
      },
    });
    await f.initialize();
    const from = f.frames.length;
    const n = await f.request('session/new', { cwd: f.home, mcpServers: [] });
    const seq = f.frames.slice(from).map((x) => x.method ?? 'result');
    expect(seq.indexOf('_kiro.dev/commands/available')).toBe(seq.indexOf('result') - 1);
    const sid = n.result.sessionId as string;
    for (const reason of ['max_tokens', 'refusal', 'max_turn_requests']) {
      const t = await f.prompt(sid, `fake:stop ${reason}`);
      expect(t.response.result).toEqual({ stopReason: reason });
      const metas = t.frames
        .filter((x) => x.method === '_kiro.dev/metadata')
        .map((x) => Object.keys(x.params));
      expect(metas).toEqual([
        ['sessionId', 'contextUsagePercentage'],
        ['sessionId', 'turnDurationMs'],
      ]);
    }
    const failed = await f.prompt(sid, 'fake:fail');
    expect(failed.response.error).toEqual({ code: -32603, message: 'Internal error', data: 'fake failure' });
    await endByEof(f);
  });
});

interface Splitter {
  feed(chunk: Buffer): void;
  readonly rest: string;
}
const { LineSplitter } = createRequire(import.meta.url)('./fixtures/fake-kiro/acp/rpc.js') as {
  LineSplitter: new (onLine: (line: string) => void) => Splitter;
};

describe('fake kiro-cli acp: its line reader', () => {
  it('gives the same lines however the bytes are cut (also inside UTF-8 sequences and CRLF)', () => {
    const line = fc.string({
      unit: fc.constantFrom('a', 'é', '👍', '{', '"', '\r', ' ', '\u2028'),
      maxLength: 30,
    });
    fc.assert(
      fc.property(
        fc.array(line, { maxLength: 8 }),
        fc.string({ maxLength: 5 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (lines, tail, cuts) => {
          const bytes = Buffer.from(`${lines.map((l) => `${l}\n`).join('')}${tail.replace(/\n/g, '')}`);
          const got: string[] = [];
          const s = new LineSplitter((l) => got.push(l));
          const at = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
          let prev = 0;
          for (const c of [...at, bytes.length]) {
            s.feed(bytes.subarray(prev, c));
            prev = c;
          }
          expect(got).toEqual(lines.map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l)));
          expect(s.rest).toBe(tail.replace(/\n/g, ''));
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('fake kiro-cli acp: load behaviours and many servers', () => {
  it('fake:hold N and fake:spin: resident memory and CPU in the chat, and a cancel still ends the spin at once', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_MCP: '0' } });
    const sid = await f.start();
    const chat = await f.chat();
    const before = readProc(chat.pid)!.rssPages;
    expect((await f.prompt(sid, 'fake:hold 64')).text).toBe('holding 64 MB');
    expect((readProc(chat.pid)!.rssPages - before) * 4096).toBeGreaterThan(60 * 1024 * 1024);
    const id = f.call('session/prompt', { sessionId: sid, prompt: [{ type: 'text', text: 'fake:spin 0' }] });
    const cpu0 = readProc(chat.pid)!.cpuTicks;
    await waitFor(() => readProc(chat.pid)!.cpuTicks >= cpu0 + 10, 'the chat to burn 100 ms of CPU');
    const t0 = performance.now();
    f.notify('session/cancel', { sessionId: sid });
    expect((await f.response(id)).result).toEqual({ stopReason: 'cancelled' });
    expect(performance.now() - t0).toBeLessThan(500);
    const text = (await f.prompt(sid, 'fake:spin-child')).text;
    const pid = Number(/^spinning (\d+)$/.exec(text)![1]);
    const spinner = identify([pid]);
    seen.push(...spinner);
    expect(readProc(pid)!.ppid).toBe(chat.pid);
    // Like the classic fake's children, it is not the chat's to stop: it outlives the chat's exit.
    f.end();
    expect(await f.exited()).toEqual({ code: 0, signal: null });
    expect(alive(spinner)).toHaveLength(1);
    await killAll(spinner);
  });

  it('KIRO_FAKE_ACP_MCP=100: a hundred servers, each its own group, all stopped at EOF', async () => {
    const f = fake({ env: { KIRO_FAKE_ACP_MCP: '100' } });
    await f.initialize();
    const r = await f.request('session/new', { cwd: f.home, mcpServers: [] }, 20_000);
    expect(r.result.sessionId).toMatch(UUID_V4);
    expect(f.frames.filter((x) => x.method === '_kiro.dev/mcp/server_initialized')).toHaveLength(100);
    const mcps = f
      .tree()
      .map((p) => readProc(p.pid)!)
      .filter((p) => p.comm === 'fake-mcp');
    expect(mcps).toHaveLength(100);
    expect(new Set(mcps.map((p) => p.pgid)).size).toBe(100);
    for (const m of mcps) expect(m.pgid).toBe(m.pid);
    await endByEof(f);
  });
});
