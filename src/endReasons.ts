/** Why a session ended. One closed union shared by the pool, the logs, SQLite and the metrics (CONTRACT.md). */
export const END_REASONS = [
  'archived',
  'deleted',
  'idle_ttl',
  'evicted',
  'cpu_limit',
  'memory_limit',
  'stuck',
  'reset',
  'crashed',
  'shutdown',
  'bot_restart',
  'spawn_failed',
] as const;

export type EndReason = (typeof END_REASONS)[number];

export function isEndReason(value: string): value is EndReason {
  return (END_REASONS as readonly string[]).includes(value);
}

/** One line a Discord user reads when their session ended for a reason they did not choose. */
export function describeEndReason(reason: EndReason): string {
  switch (reason) {
    case 'archived':
      return 'the thread was archived';
    case 'deleted':
      return 'the thread was deleted';
    case 'idle_ttl':
      return 'it was idle for too long';
    case 'evicted':
      return 'the pool was full and this was the least recently used idle session';
    case 'cpu_limit':
      return 'the agent kept the CPU above its limit for too long';
    case 'memory_limit':
      return 'the agent used more memory than allowed';
    case 'stuck':
      return 'the agent produced no output for too long during a turn';
    case 'reset':
      return 'it was reset';
    case 'crashed':
      return 'the agent exited unexpectedly';
    case 'shutdown':
      return 'the bot is shutting down';
    case 'bot_restart':
      return 'the bot restarted';
    case 'spawn_failed':
      return 'the agent could not be started';
  }
}
