import type { APIMessage } from 'discord-api-types/v10';
import type { BotHarness } from './botHarness.js';
import { waitFor } from './wait.js';

export type Button = { custom_id: string; label: string };
export const buttonsOf = (m: APIMessage): Button[] =>
  (m.components ?? []).flatMap((row) => (row as unknown as { components: Button[] }).components);

/** A thread with a live session, its first turn answered. */
export async function thread(harness: BotHarness): Promise<string> {
  const threadId = await harness.mention(harness.alice, 'start');
  await harness.botMessages(threadId, 0);
  harness.tree(threadId);
  return threadId;
}

/**
 * The first final bot message after `afterId` whose content passes `check`. A reply still streaming (its
 * `⏳ working…` footer shown) is not final: its text is a preview cut at an arbitrary point.
 */
export function botMessageAfter(
  harness: BotHarness,
  threadId: string,
  afterId: string,
  check: (c: string) => boolean,
) {
  return waitFor(
    () =>
      harness.emu
        .channelMessages(threadId)
        .find(
          (m) =>
            m.author.id === harness.emu.botUser.id &&
            BigInt(m.id) > BigInt(afterId) &&
            !m.content.includes('⏳ working…') &&
            check(m.content),
        ),
    'a bot message',
  );
}
