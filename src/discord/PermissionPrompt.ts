import { randomBytes } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import type { PermissionOption, PermissionRequest } from './sessionTypes.js';
import type { SinkButton, ThreadSink } from './ThreadSink.js';

/** What a permission prompt needs from a session. */
export interface PermissionSession {
  readonly id: string;
  readonly threadId: string;
  answerPermission(requestId: string, optionId: string): boolean;
}

/** Discord's limits on buttons: 5 rows of 5, custom_id 100 characters, label 80. */
export const MAX_BUTTONS = 25;
const MAX_LABEL = 80;
const MAX_TITLE = 1500;
const PREFIX = 'perm:';

/** The outcome of a button press, for the interaction's answer. */
export type PressOutcome =
  | { readonly kind: 'answered'; readonly content: string }
  | { readonly kind: 'expired'; readonly content: string | undefined };

interface OpenPrompt {
  readonly key: string;
  readonly session: PermissionSession;
  readonly request: PermissionRequest;
  readonly options: readonly PermissionOption[];
  readonly text: string;
  readonly sink: ThreadSink;
  /** Resolves to the posted message's id (undefined when it could not be posted). */
  readonly posted: Promise<string | undefined>;
}

const STYLE: Record<PermissionOption['kind'], SinkButton['style']> = {
  allow_once: 'success',
  allow_always: 'primary',
  reject_once: 'danger',
  reject_always: 'danger',
};

/** Whether a button's custom_id belongs to a permission prompt. */
export function isPermissionButton(customId: string): boolean {
  return customId.startsWith(PREFIX);
}

function clamp(text: string, max: number): string {
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** The question as shown: a quote on one line per line of the title, never a code fence or a mention. */
function questionText(request: PermissionRequest): string {
  const title = clamp(request.title.trim() || '(the agent gave no description)', MAX_TITLE)
    .replaceAll('```', "'''")
    .split(/\r?\n/)
    .map((l) => `> ${l}`)
    .join('\n');
  return `🔐 The agent asks for permission:\n${title}`;
}

/**
 * The agent's permission questions as Discord buttons, one per option the agent offered (its name as the label,
 * its optionId as the answer). A button's custom_id is `perm:<random key>:<option index>` (about 16 characters,
 * far under Discord's 100), so it never carries the agent's ids and a button of an earlier bot instance or of
 * an expired question matches nothing.
 */
export class PermissionPrompts {
  private readonly open = new Map<string, OpenPrompt>();
  private readonly log: Logger;

  constructor(logger: Logger) {
    this.log = logger.child({ component: 'permissions' });
  }

  /** Open questions (for tests and shutdown). */
  get size(): number {
    return this.open.size;
  }

  /** Posts the question with its buttons. Options past Discord's 25 buttons are left out and logged. */
  show(
    session: PermissionSession,
    request: PermissionRequest,
    sink: ThreadSink,
  ): Promise<string | undefined> {
    const key = randomBytes(6).toString('base64url');
    const options = request.options.slice(0, MAX_BUTTONS);
    if (request.options.length > MAX_BUTTONS)
      this.log.warn(
        { threadId: session.threadId, options: request.options.length },
        'permission question has more options than Discord shows; extra ones left out',
      );
    const buttons: SinkButton[] = options.map((o, i) => ({
      customId: `${PREFIX}${key}:${i}`,
      label: clamp(o.name.trim() || o.optionId, MAX_LABEL),
      style: STYLE[o.kind] ?? 'secondary',
    }));
    const text = questionText(request);
    const posted = sink.send(text, buttons);
    this.open.set(key, { key, session, request, options, text, sink, posted });
    return posted;
  }

  /**
   * A button was pressed in `channelId` by `userId` (already allowed by the access rules). Answers the agent
   * with the option's id; an unknown key, a press from another thread, or a question the session no longer
   * waits on is "expired".
   */
  press(customId: string, channelId: string, userId: string): PressOutcome {
    const [, key = '', index = ''] = customId.split(':');
    const prompt = this.open.get(key);
    const option = prompt?.options[Number(index)];
    if (!prompt || !option || !/^\d+$/.test(index) || prompt.session.threadId !== channelId) {
      return { kind: 'expired', content: undefined };
    }
    // Forget it first: the session may report the answer (permissionResolved) from inside answerPermission.
    this.open.delete(key);
    if (!prompt.session.answerPermission(prompt.request.requestId, option.optionId)) {
      return {
        kind: 'expired',
        content: `${prompt.text}\n-# ⌛ Expired: the agent no longer waits for an answer.`,
      };
    }
    this.log.info(
      { threadId: channelId, userId, requestId: prompt.request.requestId, optionId: option.optionId },
      'permission answered',
    );
    return { kind: 'answered', content: `${prompt.text}\n-# ${option.name} (answered by <@${userId}>)` };
  }

  /**
   * The session settled a question without a button (an ended session, a cancelled turn, TRUST_ALL_TOOLS):
   * the message loses its buttons and says why.
   */
  async resolved(sessionId: string, requestId: string, optionId: string): Promise<void> {
    for (const prompt of this.open.values()) {
      if (prompt.session.id !== sessionId || prompt.request.requestId !== requestId) continue;
      this.open.delete(prompt.key);
      const chosen = prompt.options.find((o) => o.optionId === optionId);
      const note =
        optionId === 'cancelled' || !chosen
          ? '⌛ Expired: the question was cancelled (turn cancelled, idle timeout or session ended).'
          : `${chosen.name} (answered by the bot)`;
      await this.settle(prompt, note);
    }
  }

  /** The session ended: every question still open for it is marked expired. */
  async expireSession(sessionId: string, why: string): Promise<void> {
    const prompts = [...this.open.values()].filter((p) => p.session.id === sessionId);
    for (const prompt of prompts) {
      this.open.delete(prompt.key);
      await this.settle(prompt, `⌛ Expired: ${why}.`);
    }
  }

  private async settle(prompt: OpenPrompt, note: string): Promise<void> {
    const messageId = await prompt.posted;
    if (messageId !== undefined) await prompt.sink.edit(messageId, `${prompt.text}\n-# ${note}`, []);
  }
}
