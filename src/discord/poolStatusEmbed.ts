import type { APIEmbed } from 'discord-api-types/v10';
import type { AgentSession } from '../agent/AgentSession.js';
import { END_REASONS, type EndReason } from '../endReasons.js';
import type { UsageSums } from '../store/usageQueries.js';

export interface PoolStatusInput {
  readonly sessions: readonly AgentSession[];
  readonly max: number;
  readonly ended: Partial<Record<EndReason, number>>;
  readonly usage: (threadId: string) => { cpu: number; memMb: number } | undefined;
  /** Recorded usage per session and per thread (credits, last context figure); absent: not shown. */
  readonly totals?: UsageSums | undefined;
  readonly limits: { idleTtlMs: number; maxCpuPercent: number; maxMemoryMb: number; maxStuckMs: number };
  readonly now: number;
  /** What agents run under: "bwrap", or "off" with the reason when the sandbox probe failed. */
  readonly sandbox?: { readonly mechanism: string; readonly warning?: string | undefined };
}

/** Discord's embed limits (description 4096, field value 1024, total 6000), kept with room to spare. */
const MAX_DESCRIPTION = 3800;

export function formatDuration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}

function credits(n: number): string {
  return n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

/** `0.75 credits (thread 1.75)`, `ctx 30%`: only what was recorded. */
function usageCells(totals: UsageSums | undefined, sessionId: string, threadId: string): string[] {
  const session = totals?.bySession.get(sessionId);
  const thread = totals?.byThread.get(threadId);
  if (!session || !thread || thread.turnsWithUsage === 0) return [];
  const cells = [`${credits(session.credits)} credits (thread ${credits(thread.credits)})`];
  if (session.lastContextPercent !== null) cells.push(`ctx ${Math.round(session.lastContextPercent)}%`);
  return cells;
}

/** The /pool-status embed: one line per live session, end counts since start, the limits in force. */
export function poolStatusEmbed(input: PoolStatusInput): APIEmbed {
  const lines: string[] = [];
  let omitted = 0;
  let size = 0;
  for (const s of input.sessions) {
    const u = input.usage(s.threadId);
    const line = [
      `<#${s.threadId}>`,
      `\`${s.state}\``,
      `pid ${s.pid ?? '-'}`,
      u ? `${u.cpu.toFixed(1)}% CPU` : 'CPU -',
      u ? `${Math.round(u.memMb)} MB` : 'mem -',
      `up ${formatDuration(input.now - s.startedAt)}`,
      `idle ${formatDuration(input.now - s.lastActivityAt)}`,
      ...usageCells(input.totals, s.id, s.threadId),
    ].join(' · ');
    if (size + line.length + 1 > MAX_DESCRIPTION) {
      omitted++;
      continue;
    }
    lines.push(line);
    size += line.length + 1;
  }
  if (omitted > 0) lines.push(`… and ${omitted} more`);
  const ended = END_REASONS.filter((r) => (input.ended[r] ?? 0) > 0)
    .map((r) => `${r}: ${input.ended[r]}`)
    .join('\n');
  const l = input.limits;
  return {
    title: `Agent pool: ${input.sessions.length}/${input.max} sessions`,
    description: lines.length > 0 ? lines.join('\n') : 'No live sessions.',
    fields: [
      { name: 'Ended since start', value: ended || 'none', inline: true },
      {
        name: 'Limits',
        value: `idle TTL ${formatDuration(l.idleTtlMs)}\nCPU ${l.maxCpuPercent}% for ${formatDuration(l.maxStuckMs)}\nmemory ${l.maxMemoryMb} MB`,
        inline: true,
      },
      ...(input.sandbox
        ? [
            {
              name: 'Sandbox',
              value:
                input.sandbox.mechanism === 'off'
                  ? `off${input.sandbox.warning ? ` (${input.sandbox.warning})` : ''}`.slice(0, 1000)
                  : `${input.sandbox.mechanism}: each agent in its own sandbox`,
              inline: false,
            },
          ]
        : []),
    ],
    timestamp: new Date(input.now).toISOString(),
  };
}
