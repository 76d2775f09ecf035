import { type AutocompleteInteraction, type ChatInputCommandInteraction, MessageFlags } from 'discord.js';
import type { Logger } from '../log/logger.js';
import type { SessionPool } from '../pool/SessionPool.js';
import type { UsageSums } from '../store/usageQueries.js';
import type { BridgeConfig } from './BridgeConfig.js';
import { applyChoice, autocompleteChoices, type ChoiceKind, choicesOf } from './choiceCommands.js';
import { NO_MENTIONS_JS } from './noMentions.js';
import { poolStatusEmbed } from './poolStatusEmbed.js';

export interface SlashCommandsOptions {
  readonly config: BridgeConfig;
  readonly pool: SessionPool;
  readonly logger: Logger;
  /** CPU and memory per thread, for /pool-status. */
  readonly usage?: ((threadId: string) => { cpu: number; memMb: number } | undefined) | undefined;
  /** Recorded usage sums (credits, turns) per session and per thread, for /pool-status. */
  readonly usageTotals?: ((threadIds: readonly string[]) => UsageSums) | undefined;
  readonly allowed: (interaction: ChatInputCommandInteraction | AutocompleteInteraction) => boolean;
}

/**
 * The bot's slash commands: /pool-status, /cancel, /reset, /model and /agent (with autocomplete from the
 * thread's live session). Every command is deferred first (Discord's 3 s deadline does not wait for a tree kill).
 */
export class SlashCommands {
  private readonly opts: SlashCommandsOptions;
  private readonly log: Logger;

  constructor(options: SlashCommandsOptions) {
    this.opts = options;
    this.log = options.logger.child({ component: 'commands' });
  }

  async run(interaction: ChatInputCommandInteraction): Promise<void> {
    await interaction.deferReply({ flags: MessageFlags.Ephemeral });
    const say = (content: string) => interaction.editReply({ content, allowedMentions: NO_MENTIONS_JS });
    if (!this.opts.allowed(interaction)) {
      await say('🚫 You are not allowed to use this bot here.');
      return;
    }
    const threadId = interaction.channelId;
    const { pool } = this.opts;
    switch (interaction.commandName) {
      case 'pool-status': {
        const sessions = pool.list();
        const c = this.opts.config;
        const embed = poolStatusEmbed({
          sessions,
          max: pool.max,
          ended: pool.endedCounts(),
          usage: (id) => this.opts.usage?.(id),
          totals: this.opts.usageTotals?.(sessions.map((s) => s.threadId)),
          limits: {
            idleTtlMs: c.sessionIdleTtlMs,
            maxCpuPercent: c.maxCpuPercent,
            maxMemoryMb: c.maxMemoryMb,
            maxStuckMs: c.maxStuckMs,
          },
          now: Date.now(),
          sandbox: pool.sandbox,
        });
        await interaction.editReply({ embeds: [embed], allowedMentions: NO_MENTIONS_JS });
        return;
      }
      case 'cancel': {
        const ok = pool.get(threadId)?.cancel() ?? false;
        await say(
          ok
            ? 'Cancelling the current turn; the thread says when it has stopped.'
            : 'No turn is running in this thread.',
        );
        return;
      }
      case 'reset': {
        const result = await pool.close(threadId, 'reset');
        await say(
          result
            ? `Session ended (${result.kill.pids.length} process(es) stopped in ${Math.round(result.kill.durationMs)} ms). Your next message starts a new session.`
            : 'This thread has no live session.',
        );
        return;
      }
      case 'model':
      case 'agent': {
        const session = pool.get(threadId);
        if (!session) {
          await say('This thread has no live agent session: send a message first, then choose.');
          return;
        }
        const value = interaction.options.getString('name', true);
        const answer = await applyChoice(session, interaction.commandName as ChoiceKind, value);
        this.log.info({ threadId, command: interaction.commandName, value }, 'choice command');
        await say(answer);
        return;
      }
      default:
        await say('Unknown command.');
    }
  }

  /** Autocomplete for /model and /agent: the live session's choices; nothing for strangers or other commands. */
  async autocomplete(interaction: AutocompleteInteraction): Promise<void> {
    const kind = interaction.commandName;
    const session = this.opts.pool.get(interaction.channelId);
    const choices =
      (kind === 'model' || kind === 'agent') && session && this.opts.allowed(interaction)
        ? autocompleteChoices(choicesOf(session, kind), String(interaction.options.getFocused()))
        : [];
    await interaction.respond(choices);
  }
}
