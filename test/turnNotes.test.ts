import { describe, expect, it } from 'vitest';
import { applyChoice, autocompleteChoices, type ChoiceSession } from '../src/discord/choiceCommands.js';
import type { Choices } from '../src/discord/sessionTypes.js';
import { stopReasonNote } from '../src/discord/stopReasonNote.js';
import { usageFooter } from '../src/discord/usageFooter.js';

describe('turn endings and the usage footer', () => {
  it('tells max_tokens, refusal, max_turn_requests and cancelled in plain words, nothing for end_turn', () => {
    expect(stopReasonNote('end_turn')).toBeUndefined();
    expect(stopReasonNote('cancelled')).toMatch(/cancelled/);
    expect(stopReasonNote('max_tokens')).toMatch(/cut off.*length limit/);
    expect(stopReasonNote('max_turn_requests')).toMatch(/limit of steps/);
    expect(stopReasonNote('refusal')).toMatch(/declined/);
  });

  it('writes credits, context and duration on one small line, leaving out what the agent did not report', () => {
    expect(usageFooter({ credits: 0.4213, contextPercent: 37.4, durationMs: 12_345 })).toBe(
      '-# 0.42 credits · context 37% · 12 s',
    );
    expect(usageFooter({ credits: 1, durationMs: 2500 })).toBe('-# 1.00 credit · 2.5 s');
    expect(usageFooter({ contextPercent: Number.NaN, credits: -1 })).toBeUndefined();
    expect(usageFooter({})).toBeUndefined();
    expect(usageFooter(undefined)).toBeUndefined();
  });
});

class ChoosingSession implements ChoiceSession {
  model: Choices = {
    current: 'auto',
    available: [
      { id: 'auto', name: 'auto' },
      { id: 'claude-sonnet-4', name: 'Claude Sonnet 4' },
      { id: 'x'.repeat(101), name: 'too long an id' },
    ],
  };
  failWith: string | undefined;
  readonly set: string[] = [];
  models() {
    return this.model;
  }
  modes() {
    return undefined;
  }
  async setModel(id: string) {
    if (this.failWith) throw new Error(this.failWith);
    this.set.push(id);
    this.model = { ...this.model, current: id };
  }
  async setMode() {}
}

describe('/model and /agent', () => {
  it('autocomplete offers what the session offers, filtered by what was typed, current first', () => {
    const s = new ChoosingSession();
    expect(autocompleteChoices(s.models(), '')).toEqual([
      { name: 'auto · current', value: 'auto' },
      { name: 'Claude Sonnet 4 (claude-sonnet-4)', value: 'claude-sonnet-4' },
    ]);
    expect(autocompleteChoices(s.models(), 'SONN')).toEqual([
      { name: 'Claude Sonnet 4 (claude-sonnet-4)', value: 'claude-sonnet-4' },
    ]);
    expect(autocompleteChoices(undefined, 'x')).toEqual([]);
  });

  it('applies a choice the session offers and refuses one it does not, saying which exist', async () => {
    const s = new ChoosingSession();
    expect(await applyChoice(s, 'model', 'claude-sonnet-4')).toMatch(/now `claude-sonnet-4`/);
    expect(s.set).toEqual(['claude-sonnet-4']);
    expect(await applyChoice(s, 'model', 'gpt-9')).toMatch(/no model `gpt-9`.*`auto`, `claude-sonnet-4`/);
    expect(await applyChoice(s, 'model', 'claude-sonnet-4')).toMatch(/already uses/);
    expect(await applyChoice(s, 'agent', 'kiro_planner')).toBe(
      'This agent does not offer a choice of agents.',
    );
    expect(s.set).toEqual(['claude-sonnet-4']);
  });

  it("tells the agent's own error plainly", async () => {
    const s = new ChoosingSession();
    s.failWith = 'the agent does not support switching models';
    expect(await applyChoice(s, 'model', 'claude-sonnet-4')).toBe(
      '⚠️ Could not switch the model to `claude-sonnet-4`: the agent does not support switching models',
    );
  });
});
