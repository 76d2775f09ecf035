import { afterEach, describe, expect, it } from 'vitest';
import { BotHarness } from './helpers/botHarness.js';
import { alive, killAll } from './helpers/processes.js';
import { waitFor } from './helpers/wait.js';

let h: BotHarness | undefined;
afterEach(async () => {
  const seen = h?.seen ?? [];
  await h?.dispose();
  expect(alive(seen)).toEqual([]);
  await killAll(seen);
  h = undefined;
});

describe('a message queued behind a turn whose agent dies is never dropped', () => {
  it('is re-sent to the thread’s next session and answered there; the dead turn is marked ❌', async () => {
    h = await BotHarness.start();
    const threadId = await h.mention(h.alice, 'hello');
    await h.botMessages(threadId, 0);
    const first = h.app.pool.get(threadId)!;
    const hanging = h.emu.userSays(threadId, h.alice, 'fake:hang');
    await waitFor(() => first.state === 'busy', 'the hanging turn to run');
    const queued = h.emu.userSays(threadId, h.alice, 'please survive the crash');
    // Forced interleaving: the second message is in the session's queue before the agent dies.
    await waitFor(() => first.queued === 1, 'the second message to be queued');
    const tree = h.tree(threadId);
    process.kill(first.pid!, 'SIGKILL');

    await waitFor(
      () => h!.emu.reactions(threadId, queued.id).includes('✅'),
      'the queued message to be answered by the next session',
      30_000,
    );
    const next = h.app.pool.get(threadId)!;
    expect(next.id).not.toBe(first.id);
    const replies = h.emu
      .channelMessages(threadId)
      .filter((m) => m.author.bot && BigInt(m.id) > BigInt(queued.id))
      .map((m) => m.content);
    expect(replies).toContain('You said: please survive the crash');
    expect(h.emu.reactions(threadId, hanging.id)).toContain('❌');
    expect(h.emu.reactions(threadId, queued.id)).not.toContain('❌');
    const rows = h.app.store.history({ threadId });
    expect(rows.map((r) => r.endReason)).toContain('crashed');
    // The old tree is gone: the next agent started only after it.
    expect(alive(tree)).toEqual([]);
  }, 60_000);
});
