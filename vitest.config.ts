import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  resolve: {
    // Tests run against the emulator's TS sources (no stale dist/ between an edit and a test run); the bot's
    // child processes (the CLI, the demo) import the package's built dist/, which globalSetup builds.
    alias: {
      '@threadwarden/discord-emulator': fileURLToPath(
        new URL('./packages/discord-emulator/src/index.ts', import.meta.url),
      ),
    },
  },
  test: {
    include: ['test/**/*.test.ts', 'packages/*/test/**/*.test.ts'],
    // Process-heavy files spawn real ptys; running files one at a time keeps
    // a loaded 2-core machine deterministic.
    fileParallelism: false,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    globalSetup: ['test/globalSetup.ts'],
    reporters: ['default'],
  },
});
