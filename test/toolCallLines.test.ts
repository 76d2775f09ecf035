import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ToolCallInfo } from '../src/discord/sessionTypes.js';
import { ToolCallLines } from '../src/discord/ToolCallLines.js';
import { RecordingSink } from './helpers/recordingSink.js';

beforeEach(() => {
  vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'performance'] });
});
afterEach(() => {
  vi.useRealTimers();
});

const tool = (id: string, title: string, status: ToolCallInfo['status']): ToolCallInfo => ({
  id,
  title,
  status,
});

describe('tool call lines', () => {
  it('shows every call of a turn in one message, one line each with its final status', async () => {
    const sink = new RecordingSink();
    const lines = new ToolCallLines(sink, { editIntervalMs: 1500 });
    lines.update(tool('t1', 'Running: ls', 'pending'));
    lines.update(tool('t1', '', 'completed'));
    lines.update(tool('t2', 'Reading file.txt', 'in_progress'));
    await vi.advanceTimersByTimeAsync(0);
    lines.update(tool('t2', '', 'failed'));
    lines.update(tool('t3', 'Writing out.md', 'pending'));
    const done = lines.finish();
    await vi.advanceTimersByTimeAsync(2000);
    await done;
    expect(sink.calls.filter((c) => c.op === 'send')).toHaveLength(1);
    const [only] = [...sink.messages.values()];
    expect(only!.content.split('\n')).toEqual([
      '-# 🔧 tool calls: 3',
      '✅ Running: ls · done',
      '❌ Reading file.txt · failed',
      '⏳ Writing out.md · waiting',
    ]);
  });

  it('edits the status message at most once per interval, the last edit included', async () => {
    const sink = new RecordingSink();
    const lines = new ToolCallLines(sink, { editIntervalMs: 1500 });
    for (let i = 0; i < 60; i++) {
      lines.update(tool(`t${i}`, `step ${i}`, 'in_progress'));
      await vi.advanceTimersByTimeAsync(100);
      lines.update(tool(`t${i}`, '', 'completed'));
    }
    const done = lines.finish();
    await vi.advanceTimersByTimeAsync(1500);
    await done;
    const at = sink.calls.map((c) => c.at);
    expect(sink.calls.length).toBeGreaterThan(2);
    for (let i = 1; i < at.length; i++) expect(at[i]! - at[i - 1]!).toBeGreaterThanOrEqual(1500);
    expect(sink.calls.at(-1)!.content).toContain('step 59 · done');
  });

  it('a storm of calls stays one message under 2000 characters, newest lines shown', async () => {
    const sink = new RecordingSink();
    const lines = new ToolCallLines(sink, { maxLines: 15 });
    for (let i = 0; i < 500; i++) lines.update(tool(`t${i}`, `x`.repeat(300), 'completed'));
    lines.update(tool('last', 'the newest one', 'completed'));
    const done = lines.finish();
    await vi.advanceTimersByTimeAsync(3000);
    await done;
    const contents = sink.calls.map((c) => c.content);
    expect(new Set(sink.calls.map((c) => c.messageId)).size).toBe(1);
    for (const c of contents) expect(c.length).toBeLessThanOrEqual(2000);
    expect(contents.at(-1)).toContain('tool calls: 501 (486 earlier not shown)');
    expect(contents.at(-1)).toContain('the newest one');
  });

  it('continues in a new message before the edit limit of an old one', async () => {
    const sink = new RecordingSink();
    let wall = 1_700_000_000_000;
    const lines = new ToolCallLines(sink, { maxMessageAgeMs: 10_000, now: () => wall });
    lines.update(tool('a', 'first', 'completed'));
    await vi.advanceTimersByTimeAsync(2000);
    wall += 20_000;
    lines.update(tool('b', 'second', 'in_progress'));
    const done = lines.finish();
    await vi.advanceTimersByTimeAsync(3000);
    await done;
    const sends = sink.calls.filter((c) => c.op === 'send');
    expect(sends).toHaveLength(2);
    expect(sink.messages.get(sends[0]!.messageId)!.content).toContain('first · done');
    expect(sink.messages.get(sends[1]!.messageId)!.content).toContain('second · running');
    expect(sink.messages.get(sends[1]!.messageId)!.content).not.toContain('first');
  });

  it('posts nothing for a turn without tool calls', async () => {
    const sink = new RecordingSink();
    const lines = new ToolCallLines(sink);
    await lines.finish();
    expect(sink.calls).toEqual([]);
  });

  it('any titles render as single lines without code spans, under 2000 characters', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.tuple(
            fc.string({ maxLength: 400 }),
            fc.constantFrom('pending', 'completed', 'failed', 'in_progress'),
          ),
          { maxLength: 40 },
        ),
        (calls) => {
          const lines = new ToolCallLines(new RecordingSink());
          for (const [i, [title, status]] of calls.entries())
            lines.update(tool(`t${i}`, title, status as ToolCallInfo['status']));
          const text = lines.render();
          lines.close();
          expect(text.length).toBeLessThanOrEqual(2000);
          expect(text).not.toContain('`');
          expect(text.split('\n')).toHaveLength(1 + Math.min(calls.length, 15));
        },
      ),
    );
  });
});
