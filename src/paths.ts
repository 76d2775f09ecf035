import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The folder holding threadwarden's package.json, whether running from src/ (tests) or dist/src/ (built). */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (
      existsSync(pkg) &&
      (JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'threadwarden'
    ) {
      root = dir;
      return dir;
    }
    const up = dirname(dir);
    if (up === dir) throw new Error('threadwarden: cannot find the package root (package.json)');
    dir = up;
  }
}

/** The bundled fake kiro-cli used by the demo, the tests and the benchmarks. */
export function fakeKiroPath(): string {
  return join(packageRoot(), 'test', 'fixtures', 'fake-kiro', 'kiro-cli');
}
