import { execFileSync } from 'node:child_process';

/** Builds dist/ once, for tests that run the real CLI as a child process. TW_SKIP_BUILD=1 skips it while iterating. */
export default function setup(): void {
  if (process.env.TW_SKIP_BUILD === '1') return;
  execFileSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], {
    stdio: 'inherit',
  });
}
