import { execFileSync } from 'node:child_process';

/**
 * Builds dist/ once, for tests that run the real CLI as a child process: the emulator package first (the demo
 * imports its dist/ through the workspace link), then the bot. TW_SKIP_BUILD=1 skips it while iterating.
 */
export default function setup(): void {
  if (process.env.TW_SKIP_BUILD === '1') return;
  for (const project of ['packages/discord-emulator/tsconfig.build.json', 'tsconfig.build.json']) {
    execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', project], { stdio: 'inherit' });
  }
}
