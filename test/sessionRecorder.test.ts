import { afterEach, describe, expect, it } from 'vitest';
import { PoolHarness, threadId } from './helpers/harness.js';
import { waitFor } from './helpers/wait.js';

let h: PoolHarness | undefined;
afterEach(async () => {
  await h?.disposeChecked();
  h = undefined;
});

describe('SessionRecorder: the store learns everything from events', () => {
  it('writes the row before the agent is spawned, then every lifecycle event in order', async () => {
    h = new PoolHarness();
    let rowAtSpawn: unknown;
    h.pool.once('sessionCreated', (s) => {
      // Listeners added after the recorder's: the row must already be there when the process exists.
      s.once('spawned', () => {
        rowAtSpawn = h!.row(s.id);
      });
    });
    const s = await h.pool.acquire(threadId());
    await s.ready;
    expect(rowAtSpawn).toMatchObject({ id: s.id, threadId: s.threadId, marker: s.marker });
    const asked = new Promise<void>((r) => s.once('permission', () => r()));
    const turn = s.prompt('fake:permission');
    await asked;
    const q = s.pendingPermission!;
    s.answerPermission(q.requestId, q.options[0]!.optionId);
    await turn;
    const hang = s.prompt('fake:hang');
    await waitFor(() => s.currentTurnId === 2, 'the second turn');
    s.cancel();
    await hang;
    await h.pool.close(s.threadId, 'reset');
    const kinds = h.store.events(s.id).map((e) => e.kind);
    expect(kinds).toEqual([
      'spawn',
      'ready',
      'turn_start',
      'permission',
      'permission_answer',
      'turn_end',
      'turn_start',
      'interrupt',
      'turn_end',
    ]);
    const row = h.row(s.id)!;
    expect(row).toMatchObject({ pid: s.pid, turns: 2, endReason: 'reset' });
    expect(JSON.parse(row.command)).toEqual([...s.command]);
    const ends = h.store.events(s.id).filter((e) => e.kind === 'turn_end');
    expect(ends.map((e) => (e.detail as { stopReason: string }).stopReason)).toEqual([
      'end_turn',
      'cancelled',
    ]);
  });

  it('records nothing for sessions created after it is closed', async () => {
    h = new PoolHarness();
    h.recorder.close();
    const s = await h.pool.acquire(threadId());
    await s.ready;
    expect(h.row(s.id)).toBeUndefined();
  });
});
