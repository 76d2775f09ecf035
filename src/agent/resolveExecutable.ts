import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, resolve } from 'node:path';

/** Finds an executable like execvp would: a path with a slash as given, else each PATH entry. Undefined if none. */
export function resolveExecutable(
  command: string,
  pathVar: string | undefined,
  cwd = process.cwd(),
): string | undefined {
  const candidates = command.includes('/')
    ? [isAbsolute(command) ? command : resolve(cwd, command)]
    : (pathVar ?? '')
        .split(delimiter)
        .filter((d) => d !== '')
        .map((d) => join(d, command));
  for (const file of candidates) {
    try {
      if (!statSync(file).isFile()) continue;
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not there or not executable: try the next one
    }
  }
  return undefined;
}
