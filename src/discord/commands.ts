import { SlashCommandBuilder } from 'discord.js';

/** The slash commands of CONTRACT.md and the README, as registered with Discord. */
export const COMMANDS = [
  new SlashCommandBuilder()
    .setName('pool-status')
    .setDescription('List live agent sessions, their resources, usage and end counts'),
  new SlashCommandBuilder()
    .setName('cancel')
    .setDescription("Interrupt the agent's current turn in this thread"),
  new SlashCommandBuilder()
    .setName('reset')
    .setDescription("End this thread's agent session; the next message starts a new one"),
  new SlashCommandBuilder()
    .setName('model')
    .setDescription("Choose the model of this thread's agent (remembered for the thread)")
    .addStringOption((o) =>
      o.setName('name').setDescription('A model the agent offers').setRequired(true).setAutocomplete(true),
    ),
  new SlashCommandBuilder()
    .setName('agent')
    .setDescription("Choose the agent (mode) of this thread's session (remembered for the thread)")
    .addStringOption((o) =>
      o.setName('name').setDescription('An agent the session offers').setRequired(true).setAutocomplete(true),
    ),
].map((c) => c.toJSON());

export type CommandName = 'pool-status' | 'cancel' | 'reset' | 'model' | 'agent';
