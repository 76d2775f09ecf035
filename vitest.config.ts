import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
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
