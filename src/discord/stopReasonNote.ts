import type { StopReason } from './sessionTypes.js';

/**
 * What the thread is told when a turn ended other than normally, in plain words; undefined for `end_turn`.
 * A cancelled turn says so whoever cancelled it (/cancel, a permission question answered "cancelled").
 */
export function stopReasonNote(reason: StopReason): string | undefined {
  switch (reason) {
    case 'end_turn':
      return undefined;
    case 'cancelled':
      return '⏹️ The turn was cancelled; the agent stopped before finishing.';
    case 'max_tokens':
      return '✂️ The reply was cut off: the agent reached its output length limit. Ask it to continue.';
    case 'max_turn_requests':
      return '✂️ The agent stopped: it reached its limit of steps for one turn. Ask it to continue.';
    case 'refusal':
      return '🙅 The agent declined to answer this message.';
  }
}
