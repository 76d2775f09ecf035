export * from './DiscordEmulator.js';
