import { SlashCommandBuilder } from 'discord.js';

/** The slash commands of CONTRACT.md, as registered with Discord. */
export const COMMANDS = [
  new SlashCommandBuilder()
    .setName('pool-status')
    .setDescription('List live agent sessions, their resources and end counts'),
  new SlashCommandBuilder()
    .setName('cancel')
    .setDescription("Interrupt the agent's current turn in this thread"),
  new SlashCommandBuilder()
    .setName('reset')
    .setDescription("End this thread's agent session; the next message starts a new one"),
].map((c) => c.toJSON());

export type CommandName = 'pool-status' | 'cancel' | 'reset';
