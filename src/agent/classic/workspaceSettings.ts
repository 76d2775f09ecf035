import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

/**
 * Writes the agent's workspace settings file (`<cwd>/.kiro/settings/cli.json` for kiro-cli, which wins over the
 * user's own settings there) before a spawn, replacing whatever is there: the agent can write its workspace, so
 * nothing it left behind is kept. A symlinked directory or file on the way is removed, not followed, so the write
 * never lands outside the workspace; the file is replaced by a rename, atomically.
 */
export function writeWorkspaceSettings(
  cwd: string,
  file: string,
  settings: Readonly<Record<string, boolean | number | string>>,
): string {
  const target = join(cwd, file);
  const rel = relative(cwd, dirname(target));
  if (rel.startsWith('..')) throw new Error(`settings file ${file} is outside the workspace`);
  let dir = cwd;
  for (const part of rel === '' ? [] : rel.split(sep)) {
    dir = join(dir, part);
    const st = lstatOrUndefined(dir);
    if (st?.isDirectory()) continue;
    // A symlink or a file where a directory belongs: the link itself goes, its target is never touched.
    if (st) rmSync(dir, { force: true, recursive: false });
    mkdirSync(dir);
  }
  const tmp = `${target}.${randomBytes(6).toString('hex')}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(settings, null, 2)}\n`, { flag: 'wx', mode: 0o644 });
  renameSync(tmp, target);
  return target;
}

function lstatOrUndefined(path: string) {
  try {
    return lstatSync(path);
  } catch {
    return undefined;
  }
}
