import { describe, expect, it } from 'vitest';
import { ThreadLanes } from '../src/discord/ThreadLanes.js';

describe('thread lanes', () => {
  it('a later entry of a thread waits until the earlier one releases, even when it is ready first', async () => {
    const lanes = new ThreadLanes();
    const order: string[] = [];
    const first = await lanes.enter('t');
    const second = lanes.enter('t').then((release) => {
      order.push('second');
      release();
    });
    // Another thread is not held up by this one.
    const other = await lanes.enter('u');
    order.push('other');
    other();
    await Promise.resolve();
    expect(order).toEqual(['other']);
    order.push('first');
    first();
    await second;
    expect(order).toEqual(['other', 'first', 'second']);
  });

  it('releasing twice is harmless and an emptied lane is forgotten', async () => {
    const lanes = new ThreadLanes();
    const a = await lanes.enter('t');
    a();
    a();
    const b = await lanes.enter('t');
    b();
    await new Promise((r) => setImmediate(r));
    expect(lanes.size).toBe(0);
  });
});
