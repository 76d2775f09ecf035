import type { Choice, Choices } from './sessionTypes.js';

/** What /model and /agent need from a session. */
export interface ChoiceSession {
  models(): Choices | undefined;
  modes(): Choices | undefined;
  setModel(id: string): Promise<void>;
  setMode(id: string): Promise<void>;
}

export type ChoiceKind = 'model' | 'agent';

/** Discord's autocomplete limits: 25 choices, name and value 100 characters each. */
const MAX_CHOICES = 25;
const MAX_NAME = 100;

const NOUN: Record<ChoiceKind, string> = { model: 'model', agent: 'agent' };

export function choicesOf(session: ChoiceSession, kind: ChoiceKind): Choices | undefined {
  return kind === 'model' ? session.models() : session.modes();
}

function label(c: Choice, current: string | undefined): string {
  const base = c.name && c.name !== c.id ? `${c.name} (${c.id})` : c.id;
  const text = c.id === current ? `${base} · current` : base;
  return text.length > MAX_NAME ? `${text.slice(0, MAX_NAME - 1)}…` : text;
}

/**
 * Autocomplete answers for what the user typed so far: the choices whose id or name contains it (any case), the
 * current one first. Ids longer than Discord's 100-character value limit cannot be offered and are left out.
 */
export function autocompleteChoices(
  choices: Choices | undefined,
  typed: string,
): { name: string; value: string }[] {
  if (!choices) return [];
  const q = typed.trim().toLowerCase();
  return choices.available
    .filter((c) => c.id.length > 0 && c.id.length <= MAX_NAME)
    .filter((c) => q === '' || c.id.toLowerCase().includes(q) || c.name.toLowerCase().includes(q))
    .sort((a, b) => Number(b.id === choices.current) - Number(a.id === choices.current))
    .slice(0, MAX_CHOICES)
    .map((c) => ({ name: label(c, choices.current), value: c.id }));
}

function list(choices: Choices): string {
  const ids = choices.available.map((c) => `\`${c.id}\``);
  return ids.length > 20 ? `${ids.slice(0, 20).join(', ')} and ${ids.length - 20} more` : ids.join(', ');
}

/**
 * Applies /model or /agent and returns what the user is told. The value must be one the session offers (a typed
 * value that autocomplete did not offer is checked too); a failure from the agent is told in its own words.
 */
export async function applyChoice(session: ChoiceSession, kind: ChoiceKind, value: string): Promise<string> {
  const noun = NOUN[kind];
  const choices = choicesOf(session, kind);
  if (!choices || choices.available.length === 0) {
    return `This agent does not offer a choice of ${noun}s.`;
  }
  const id = value.trim();
  const choice = choices.available.find((c) => c.id === id) ?? choices.available.find((c) => c.name === id);
  if (!choice) {
    return `There is no ${noun} \`${id.replaceAll('`', "'").slice(0, 100)}\`. Choose one of: ${list(choices)}.`;
  }
  if (choice.id === choices.current) return `This thread already uses the ${noun} \`${choice.id}\`.`;
  try {
    if (kind === 'model') await session.setModel(choice.id);
    else await session.setMode(choice.id);
  } catch (err) {
    return `⚠️ Could not switch the ${noun} to \`${choice.id}\`: ${(err as Error).message}`;
  }
  return `The ${noun} of this thread is now \`${choice.id}\`; later sessions of the thread keep it.`;
}
