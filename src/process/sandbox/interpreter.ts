import { closeSync, openSync, readSync } from 'node:fs';
import { basename } from 'node:path';
import { resolveExecutable } from '../../agent/resolveExecutable.js';

/**
 * The interpreter a script's `#!` line names, resolved to a file (through `env` on the agent's PATH), so the sandbox
 * can show it. Undefined for a binary or an unreadable file.
 */
export function interpreterOf(file: string, pathVar: string | undefined): string | undefined {
  let head: string;
  try {
    const fd = openSync(file, 'r');
    try {
      const buf = Buffer.alloc(256);
      head = buf.subarray(0, readSync(fd, buf, 0, 256, 0)).toString('utf8');
    } finally {
      closeSync(fd);
    }
  } catch {
    return undefined;
  }
  if (!head.startsWith('#!')) return undefined;
  const words = head.slice(2).split('\n')[0]!.trim().split(/\s+/);
  const interp = words[0];
  if (!interp) return undefined;
  if (basename(interp) !== 'env') return interp;
  // `#!/usr/bin/env [-S] node …`: the first word that is not an option is the program.
  const program = words.slice(1).find((w) => !w.startsWith('-'));
  return program ? (resolveExecutable(program, pathVar) ?? interp) : interp;
}
