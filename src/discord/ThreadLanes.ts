/**
 * One lane per thread: work entered in a thread's lane starts only after the work entered before it has released
 * its place, so messages reach the agent's queue in the order they arrived, however long each one's preparation
 * (an attachment download) takes. A lane that empties is forgotten.
 */
export class ThreadLanes {
  private readonly tails = new Map<string, Promise<void>>();

  /**
   * Waits for the thread's earlier entries, then resolves to `release`: call it once this entry's order-sensitive
   * part is done (calling it again does nothing).
   */
  async enter(threadId: string): Promise<() => void> {
    const before = this.tails.get(threadId) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = before.then(() => mine);
    this.tails.set(threadId, tail);
    void tail.then(() => {
      if (this.tails.get(threadId) === tail) this.tails.delete(threadId);
    });
    await before;
    return release;
  }

  /** Threads with work in their lane (for tests). */
  get size(): number {
    return this.tails.size;
  }
}
