import { describe, expect, it } from 'vitest';
import {
  isPermissionButton,
  PermissionPrompts,
  type PermissionSession,
} from '../src/discord/PermissionPrompt.js';
import type { PermissionRequest } from '../src/discord/sessionTypes.js';
import { silentLogger } from '../src/log/logger.js';
import { RecordingSink } from './helpers/recordingSink.js';

const THREAD = '100000000000000001';

/** A session double that records answers and waits on one request at a time, as AgentSession does. */
class WaitingSession implements PermissionSession {
  readonly id = 'session-1';
  readonly threadId = THREAD;
  readonly answers: [string, string][] = [];
  pending: string | undefined;
  answerPermission(requestId: string, optionId: string): boolean {
    if (this.pending !== requestId) return false;
    this.pending = undefined;
    this.answers.push([requestId, optionId]);
    return true;
  }
}

const request = (over: Partial<PermissionRequest> = {}): PermissionRequest => ({
  requestId: '0',
  turnId: 1,
  title: 'Running: rm x',
  options: [
    { optionId: 'allow_once', name: 'Yes', kind: 'allow_once' },
    { optionId: 'allow_always', name: 'Always', kind: 'allow_always' },
    { optionId: 'reject_once', name: 'No', kind: 'reject_once' },
  ],
  ...over,
});

function setup() {
  const sink = new RecordingSink(THREAD);
  const prompts = new PermissionPrompts(silentLogger());
  const session = new WaitingSession();
  session.pending = '0';
  return { sink, prompts, session };
}

describe('permission prompts', () => {
  it("offers one button per option of the agent, its name as the label, within Discord's limits", async () => {
    const { sink, prompts, session } = setup();
    const id = await prompts.show(session, request(), sink);
    const msg = sink.messages.get(id!)!;
    expect(msg.content).toBe('🔐 The agent asks for permission:\n> Running: rm x');
    expect(msg.buttons!.map((b) => [b.label, b.style])).toEqual([
      ['Yes', 'success'],
      ['Always', 'primary'],
      ['No', 'danger'],
    ]);
    for (const b of msg.buttons!) {
      expect(isPermissionButton(b.customId)).toBe(true);
      expect(b.customId.length).toBeLessThanOrEqual(100);
    }
  });

  it("pressing a button answers with that option's id and says who answered what", async () => {
    const { sink, prompts, session } = setup();
    const id = await prompts.show(session, request(), sink);
    const no = sink.messages.get(id!)!.buttons![2]!;
    const outcome = prompts.press(no.customId, THREAD, '200000000000000002');
    expect(session.answers).toEqual([['0', 'reject_once']]);
    expect(outcome).toEqual({
      kind: 'answered',
      content:
        '🔐 The agent asks for permission:\n> Running: rm x\n-# No (answered by <@200000000000000002>)',
    });
    // A second press of the same question is expired, and the agent hears nothing more.
    expect(prompts.press(no.customId, THREAD, '200000000000000002').kind).toBe('expired');
    expect(session.answers).toHaveLength(1);
    expect(prompts.size).toBe(0);
  });

  it('long agent option ids never reach the custom id; 30 options show the first 25', async () => {
    const { sink, prompts, session } = setup();
    const options = Array.from({ length: 30 }, (_, i) => ({
      optionId: `option-${i}-${'x'.repeat(200)}`,
      name: `Choice ${i} ${'y'.repeat(100)}`,
      kind: 'allow_once' as const,
    }));
    const id = await prompts.show(session, request({ options }), sink);
    const buttons = sink.messages.get(id!)!.buttons!;
    expect(buttons).toHaveLength(25);
    for (const b of buttons) {
      expect(b.customId.length).toBeLessThanOrEqual(100);
      expect(b.label.length).toBeLessThanOrEqual(80);
    }
    prompts.press(buttons[24]!.customId, THREAD, '200000000000000002');
    expect(session.answers).toEqual([['0', options[24]!.optionId]]);
  });

  it('a press from another channel, an unknown key or a forged index answers nothing', async () => {
    const { sink, prompts, session } = setup();
    const id = await prompts.show(session, request(), sink);
    const yes = sink.messages.get(id!)!.buttons![0]!;
    const key = yes.customId.split(':')[1];
    expect(prompts.press(yes.customId, '100000000000000009', 'u').kind).toBe('expired');
    expect(prompts.press('perm:nokey:0', THREAD, 'u').kind).toBe('expired');
    expect(prompts.press(`perm:${key}:7`, THREAD, 'u').kind).toBe('expired');
    expect(prompts.press(`perm:${key}:-1`, THREAD, 'u').kind).toBe('expired');
    expect(prompts.press(`perm:${key}:0x0`, THREAD, 'u').kind).toBe('expired');
    expect(session.answers).toEqual([]);
    expect(prompts.size).toBe(1);
  });

  it('a question the session stopped waiting on is marked expired when pressed', async () => {
    const { sink, prompts, session } = setup();
    const id = await prompts.show(session, request(), sink);
    session.pending = undefined;
    const outcome = prompts.press(sink.messages.get(id!)!.buttons![0]!.customId, THREAD, 'u');
    expect(outcome.kind).toBe('expired');
    expect(outcome.content).toContain('Expired');
    expect(session.answers).toEqual([]);
  });

  it('a question cancelled by the session (idle TTL, session end) loses its buttons and says expired', async () => {
    const { sink, prompts, session } = setup();
    const id = await prompts.show(session, request(), sink);
    await prompts.resolved(session.id, '0', 'cancelled');
    const msg = sink.messages.get(id!)!;
    expect(msg.buttons).toEqual([]);
    expect(msg.content).toMatch(/-# ⌛ Expired: the question was cancelled/);
    expect(prompts.size).toBe(0);
  });

  it('an answer the bot gave itself (TRUST_ALL_TOOLS) is shown with the option name', async () => {
    const { sink, prompts, session } = setup();
    const id = await prompts.show(session, request(), sink);
    await prompts.resolved(session.id, '0', 'allow_once');
    expect(sink.messages.get(id!)!.content).toMatch(/-# Yes \(answered by the bot\)$/);
  });

  it('ending the session expires every open question of it, and only of it', async () => {
    const { sink, prompts, session } = setup();
    const other: PermissionSession = { id: 'session-2', threadId: THREAD, answerPermission: () => true };
    const a = await prompts.show(session, request(), sink);
    const b = await prompts.show(other, request({ requestId: '5' }), sink);
    await prompts.expireSession(session.id, 'the session ended');
    expect(sink.messages.get(a!)!.content).toMatch(/Expired: the session ended\.$/);
    expect(sink.messages.get(b!)!.buttons).toHaveLength(3);
    expect(prompts.size).toBe(1);
  });

  it('a title cannot close a code fence or run past the message limit', async () => {
    const { sink, prompts, session } = setup();
    const id = await prompts.show(session, request({ title: `\`\`\`\nrm -rf /\n${'z'.repeat(5000)}` }), sink);
    const content = sink.messages.get(id!)!.content;
    expect(content).not.toContain('```');
    expect(content.length).toBeLessThan(2000 - 200);
    expect(
      content
        .split('\n')
        .slice(1)
        .every((l) => l.startsWith('> ')),
    ).toBe(true);
  });
});
