import { afterEach, describe, expect, it, vi } from 'vitest';
import { ReplyStream } from '../src/discord/ReplyStream.js';
import type { SinkButton, ThreadSink } from '../src/discord/ThreadSink.js';
import { waitFor } from './helpers/wait.js';

const MIN = 60_000;

/** A thread that records what the stream did, stamped with the test's hand-moved clock. */
class RecordingSink implements ThreadSink {
  readonly threadId = '100000000000000001';
  readonly ops: { op: 'send' | 'edit'; id: string; content: string; at: number }[] = [];
  readonly postedAt = new Map<string, number>();
  readonly content = new Map<string, string>();
  private next = 1;
  constructor(private readonly clock: () => number) {}
  async send(content: string, _buttons?: readonly SinkButton[]): Promise<string> {
    const id = String(this.next++);
    this.postedAt.set(id, this.clock());
    this.content.set(id, content);
    this.ops.push({ op: 'send', id, content, at: this.clock() });
    return id;
  }
  async edit(id: string, content: string): Promise<boolean> {
    this.content.set(id, content);
    this.ops.push({ op: 'edit', id, content, at: this.clock() });
    return true;
  }
  async typing(): Promise<void> {}
  async react(): Promise<void> {}
  async unreact(): Promise<void> {}
  /** Oldest age of a message at one of its edits, ms. */
  oldestEditAge(): number {
    return Math.max(
      0,
      ...this.ops.filter((o) => o.op === 'edit').map((o) => o.at - this.postedAt.get(o.id)!),
    );
  }
}

afterEach(() => {
  vi.useRealTimers();
});

describe('ReplyStream and Discord’s one-hour edit limit (hand-moved clock)', () => {
  it('a turn streaming past 50 minutes continues in a new message; no message is edited once 59 minutes old', async () => {
    let now = 1_800_000_000_000;
    const start = now;
    const sink = new RecordingSink(() => now);
    let text = 'line 1';
    const stream = new ReplyStream(sink, () => text, { editIntervalMs: 0, now: () => now });
    const step = async (minutes: number, line: string) => {
      now = start + minutes * MIN;
      text += `\n${line}`;
      const before = sink.ops.length;
      stream.update();
      await waitFor(() => sink.ops.length > before, `the stream to show ${line}`);
      // Let a rollover's second request (the new message) land too.
      await new Promise((r) => setImmediate(r));
    };
    stream.update();
    await waitFor(() => sink.ops.length === 1, 'the streaming message');
    await step(10, 'line 2');
    await step(51, 'line 3');
    await waitFor(() => sink.postedAt.size === 2, 'the continuation message');
    await step(70, 'line 4');
    await step(105, 'line 5');
    await waitFor(() => sink.postedAt.size === 3, 'a third message after the second one aged');
    now = start + 110 * MIN;
    await stream.finish(`${text}\nthe end`);

    expect(sink.oldestEditAge()).toBeLessThan(59 * MIN);
    expect(sink.postedAt.size).toBe(3);
    // The first two are left marked as continued, showing what had streamed; the third holds the final reply.
    expect(sink.content.get('1')).toBe('line 1\nline 2\n-# ⏳ still working: continued below');
    expect(sink.content.get('2')).toMatch(/line 4\n-# ⏳ still working: continued below$/);
    expect(sink.content.get('3')).toBe('line 1\nline 2\nline 3\nline 4\nline 5\nthe end');
  });

  it('never edits a message that aged past the limit while the agent was silent: the final reply is posted anew', async () => {
    let now = 1_800_000_000_000;
    const sink = new RecordingSink(() => now);
    const stream = new ReplyStream(sink, () => 'thinking out loud', { editIntervalMs: 0, now: () => now });
    stream.update();
    await waitFor(() => sink.ops.length === 1, 'the streaming message');
    now += 61 * MIN;
    await stream.finish('done at last');
    expect(sink.ops.map((o) => o.op)).toEqual(['send', 'send']);
    expect(sink.content.get('2')).toBe('done at last');
    expect(sink.oldestEditAge()).toBe(0);
  });

  it('a session ending after the limit posts the cut-off note anew instead of editing the old message', async () => {
    let now = 1_800_000_000_000;
    const sink = new RecordingSink(() => now);
    const stream = new ReplyStream(sink, () => 'half a thought', { editIntervalMs: 0, now: () => now });
    stream.update();
    await waitFor(() => sink.ops.length === 1, 'the streaming message');
    now += 60 * MIN;
    await stream.abort('(session ended: stuck)');
    expect(sink.ops.map((o) => o.op)).toEqual(['send', 'send']);
    expect(sink.content.get('2')).toBe('half a thought\n-# (session ended: stuck)');
  });

  it('rolls a silent stream over on its own timer at 50 minutes (fake timers move both clocks)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const sink = new RecordingSink(() => Date.now());
    const stream = new ReplyStream(sink, () => 'compiling…', { editIntervalMs: 0 });
    stream.update();
    await vi.advanceTimersByTimeAsync(1);
    expect(sink.ops).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(50 * MIN);
    expect(sink.ops.map((o) => o.op)).toEqual(['send', 'edit', 'send']);
    expect(sink.content.get('1')).toBe('compiling…\n-# ⏳ still working: continued below');
    expect(sink.content.get('2')).toBe('compiling…\n-# ⏳ working…');
    await stream.finish('built');
    expect(sink.content.get('2')).toBe('built');
    expect(sink.oldestEditAge()).toBeLessThan(59 * MIN);
  });

  it('puts a note under the last part when it fits, else in a message of its own', async () => {
    const sink = new RecordingSink(() => 0);
    await new ReplyStream(sink, () => '').finish('short answer', '-# (turn cancelled)');
    expect([...sink.content.values()]).toEqual(['short answer\n-# (turn cancelled)']);
    const full = new RecordingSink(() => 0);
    await new ReplyStream(full, () => '').finish('x'.repeat(1990), '-# 0.42 credits');
    expect([...full.content.values()]).toEqual(['x'.repeat(1990), '-# 0.42 credits']);
  });
});

describe('ReplyStream when the session ends under the turn', () => {
  it('text that arrived but was not posted yet is posted with the cut-off note, never dropped', async () => {
    const sink = new RecordingSink(() => 0);
    const stream = new ReplyStream(sink, () => 'partial output', { editIntervalMs: 1500, now: () => 0 });
    // Forced interleaving: the agent's last chunk schedules a refresh, and the session ends before it runs.
    stream.update();
    await stream.abort('(session ended: crashed)');
    expect(sink.ops.map((o) => [o.op, o.content])).toEqual([
      ['send', 'partial output\n-# (session ended: crashed)'],
    ]);
  });

  it('a turn that had said nothing posts nothing', async () => {
    const sink = new RecordingSink(() => 0);
    const stream = new ReplyStream(sink, () => ' \n', { now: () => 0 });
    stream.update();
    await stream.abort('(session ended: crashed)');
    expect(sink.ops).toEqual([]);
  });
});
