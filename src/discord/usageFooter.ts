import type { TurnUsage } from './sessionTypes.js';

function credits(n: number): string {
  const text = n >= 10 ? n.toFixed(1) : n >= 0.01 ? n.toFixed(2) : n.toPrecision(2);
  return `${text} ${n === 1 ? 'credit' : 'credits'}`;
}

function seconds(ms: number): string {
  return ms < 10_000 ? `${(ms / 1000).toFixed(1)} s` : `${Math.round(ms / 1000)} s`;
}

/**
 * The one-line usage footer under a final reply (`-# 0.42 credits · context 37% · 12.3 s`), from what the agent
 * reported; undefined when it reported nothing usable. Non-finite or negative figures are left out.
 */
export function usageFooter(usage: TurnUsage | undefined): string | undefined {
  if (!usage) return undefined;
  const ok = (n: number | undefined): n is number => n !== undefined && Number.isFinite(n) && n >= 0;
  const parts: string[] = [];
  if (ok(usage.credits)) parts.push(credits(usage.credits));
  if (ok(usage.contextPercent)) parts.push(`context ${Math.round(Math.min(usage.contextPercent, 999))}%`);
  if (ok(usage.durationMs)) parts.push(seconds(usage.durationMs));
  return parts.length > 0 ? `-# ${parts.join(' · ')}` : undefined;
}
