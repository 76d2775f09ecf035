import type { Choice, Choices, PermissionKind, PermissionOption, ToolStatus, TurnUsage } from '../types.js';

/** Parsers for what the agent sends: loose records in, typed values out (the edge of the protocol). */

type Rec = Record<string, unknown>;
const rec = (v: unknown): Rec | undefined =>
  typeof v === 'object' && v !== null && !Array.isArray(v) ? (v as Rec) : undefined;
const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** `models` of session/new|load: {currentModelId, availableModels:[{modelId,name,description}]}. */
export function parseModels(v: unknown): Choices | undefined {
  const r = rec(v);
  if (!r || !Array.isArray(r.availableModels)) return undefined;
  return choices(str(r.currentModelId), r.availableModels, 'modelId');
}

/** `modes`: {currentModeId, availableModes:[{id,name,description}]}. */
export function parseModes(v: unknown): Choices | undefined {
  const r = rec(v);
  if (!r || !Array.isArray(r.availableModes)) return undefined;
  return choices(str(r.currentModeId), r.availableModes, 'id');
}

function choices(current: string | undefined, list: unknown[], idKey: string): Choices {
  const available: Choice[] = [];
  for (const item of list) {
    const m = rec(item);
    const id = m && str(m[idKey]);
    if (!m || !id) continue;
    const description = str(m.description);
    available.push({ id, name: str(m.name) ?? id, ...(description !== undefined && { description }) });
  }
  return { ...(current !== undefined && { current }), available };
}

const KINDS = new Set<PermissionKind>(['allow_once', 'allow_always', 'reject_once', 'reject_always']);

export function parseOptions(v: unknown): PermissionOption[] {
  if (!Array.isArray(v)) return [];
  const out: PermissionOption[] = [];
  for (const item of v) {
    const o = rec(item);
    const optionId = o && str(o.optionId);
    const kind = o && str(o.kind);
    if (!o || !optionId || !kind || !KINDS.has(kind as PermissionKind)) continue;
    out.push({ optionId, name: str(o.name) ?? optionId, kind: kind as PermissionKind });
  }
  return out;
}

const STATUSES = new Set<ToolStatus>(['pending', 'in_progress', 'completed', 'failed']);
export function parseStatus(v: unknown): ToolStatus | undefined {
  return typeof v === 'string' && STATUSES.has(v as ToolStatus) ? (v as ToolStatus) : undefined;
}

/** `_kiro.dev/metadata`: contextUsagePercentage, meteringUsage [{value, unit:"credit"}], turnDurationMs. */
export function parseKiroMetadata(v: unknown): TurnUsage | undefined {
  const r = rec(v);
  if (!r) return undefined;
  const contextPercent = num(r.contextUsagePercentage);
  const durationMs = num(r.turnDurationMs);
  let credits: number | undefined;
  if (Array.isArray(r.meteringUsage)) {
    for (const m of r.meteringUsage) {
      const u = rec(m);
      const value = u && num(u.value);
      if (u && value !== undefined && (u.unit === 'credit' || u.unit === 'credits'))
        credits = (credits ?? 0) + value;
    }
  }
  if (contextPercent === undefined && durationMs === undefined && credits === undefined) return undefined;
  return {
    ...(credits !== undefined && { credits }),
    ...(contextPercent !== undefined && { contextPercent }),
    ...(durationMs !== undefined && { durationMs }),
  };
}

/** The text of a JSON-RPC error as kiro sends it: `data` holds the reason, `message` is "Internal error". */
export function errorText(err: unknown): string {
  const e = rec(err);
  if (!e) return String(err);
  const data = e.data;
  const d = typeof data === 'string' ? data : rec(data) ? JSON.stringify(data) : undefined;
  const message = str(e.message) ?? 'error';
  return d ? `${d}` : message;
}
