import { lstatSync, readlinkSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';

/** One step of the sandbox's filesystem view, applied in order (a later mount covers an earlier one). */
export type Mount =
  | { readonly kind: 'ro-bind' | 'bind'; readonly src: string; readonly dest: string }
  | { readonly kind: 'tmpfs' | 'proc' | 'dev'; readonly dest: string }
  | { readonly kind: 'symlink'; readonly target: string; readonly dest: string }
  /** A file that must read as empty: /dev/null bound over it. */
  | { readonly kind: 'null-file'; readonly dest: string };

/**
 * The system, read-only. /home, /root, /srv, /var, /mnt, /media and /work are never bound: anything outside this list
 * exists in the sandbox only when bound below (the workspace, kiro's state, the executable).
 */
export const SYSTEM_PATHS = [
  '/usr',
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/etc',
  '/opt',
  '/sys',
];

export interface ViewInput {
  /** The thread's workspace: the only project directory the agent sees, read-write, at its host path. */
  readonly workspace: string;
  /** The agent's HOME: a private tmpfs, with kiro's state bound into it. */
  readonly home: string | undefined;
  /** Host paths bound read-write at the same path (kiro's login, settings, logs), when they exist. */
  readonly readWrite: readonly string[];
  /** Host directories bound read-write at another path: source → destination (the thread's own session store). */
  readonly overlays: readonly { readonly src: string; readonly dest: string }[];
  /** Host paths bound read-only at the same path: the agent executable's directory and its interpreter. */
  readonly readOnly: readonly string[];
  /** The bot's own paths (its directory, .env, database, lock, the workspace root): hidden wherever they would show. */
  readonly hidden: readonly string[];
  /** TMPDIR when the agent's environment sets one outside /tmp: a private tmpfs. */
  readonly tmpdir?: string | undefined;
  /** System paths; SYSTEM_PATHS unless a test narrows them. */
  readonly system?: readonly string[];
}

/** True when `path` is `base` or lies under it. */
export function isWithin(path: string, base: string): boolean {
  const rel = relative(base, path);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

function kindOf(path: string): 'dir' | 'file' | 'symlink' | undefined {
  try {
    const st = lstatSync(path);
    if (st.isSymbolicLink()) return 'symlink';
    return st.isDirectory() ? 'dir' : 'file';
  } catch {
    return undefined;
  }
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * Plans the filesystem an agent sees. The root is an empty tmpfs (bwrap's default), so the view is an allowlist: a
 * path that is not bound does not exist. The bot's own paths are masked only where an allowed tree would show them
 * (the bot installed under /opt, say); the workspace and the executable are bound after the masks, so the agent's
 * own directories stay visible even when they lie inside the bot's.
 */
export function planView(input: ViewInput): Mount[] {
  const mounts: Mount[] = [
    { kind: 'proc', dest: '/proc' },
    { kind: 'dev', dest: '/dev' },
    { kind: 'tmpfs', dest: '/tmp' },
  ];
  const shown: string[] = [];
  for (const path of input.system ?? SYSTEM_PATHS) {
    const kind = kindOf(path);
    if (kind === 'symlink') mounts.push({ kind: 'symlink', target: readlinkSync(path), dest: path });
    else if (kind !== undefined) {
      mounts.push({ kind: 'ro-bind', src: path, dest: path });
      shown.push(path);
    }
  }
  // Name resolution: /etc/resolv.conf is often a link into /run, which is otherwise not bound.
  const resolv = kindOf('/etc/resolv.conf') === 'symlink' ? safeRealpath('/etc/resolv.conf') : undefined;
  if (resolv && !shown.some((s) => isWithin(resolv, s))) {
    mounts.push({ kind: 'ro-bind', src: dirname(resolv), dest: dirname(resolv) });
    shown.push(dirname(resolv));
  }
  const masked: string[] = [];
  // Outermost first: a path inside an already masked directory is gone with it (a mask inside would recreate it).
  for (const path of [...new Set(input.hidden.map((h) => resolve(h)))].sort((a, b) => a.length - b.length)) {
    // A bot living inside a system root (never /usr itself) is masked; the roots themselves stay.
    if (shown.includes(path) || !shown.some((s) => isWithin(path, s))) continue;
    if (masked.some((m) => isWithin(path, m))) continue;
    const kind = kindOf(path);
    if (kind === 'dir') {
      mounts.push({ kind: 'tmpfs', dest: path });
      masked.push(path);
    } else if (kind !== undefined) mounts.push({ kind: 'null-file', dest: path });
  }
  if (input.home && input.home !== '/') mounts.push({ kind: 'tmpfs', dest: input.home });
  if (input.tmpdir && !isWithin(input.tmpdir, '/tmp')) mounts.push({ kind: 'tmpfs', dest: input.tmpdir });
  for (const path of input.readWrite) {
    if (kindOf(path) !== undefined) mounts.push({ kind: 'bind', src: path, dest: path });
  }
  for (const o of input.overlays) if (isDir(o.src)) mounts.push({ kind: 'bind', src: o.src, dest: o.dest });
  mounts.push({ kind: 'bind', src: input.workspace, dest: input.workspace });
  for (const path of new Set(input.readOnly)) {
    if (shown.some((s) => isWithin(path, s)) && !input.hidden.some((h) => isWithin(path, resolve(h))))
      continue;
    if (kindOf(path) !== undefined) mounts.push({ kind: 'ro-bind', src: path, dest: path });
  }
  return mounts;
}

function safeRealpath(path: string): string | undefined {
  try {
    return realpathSync(path);
  } catch {
    return undefined;
  }
}

/**
 * The directories an executable needs to be found and run: its own directory and, through symlinks, its real one;
 * for a script, the directory of its `#!` interpreter (and of `env`'s target found on PATH).
 */
export function executableDirs(file: string, interpreter: string | undefined): string[] {
  const dirs = [dirname(file)];
  const real = safeRealpath(file);
  if (real) dirs.push(dirname(real));
  if (interpreter) {
    dirs.push(dirname(interpreter));
    const realInterp = safeRealpath(interpreter);
    if (realInterp) dirs.push(dirname(realInterp));
  }
  return [...new Set(dirs)];
}

/** Where a thread's kiro session store lives on the host: beside the workspaces, one directory per thread. */
export function threadSessionStore(workspaceRoot: string, threadId: string): string {
  return join(resolve(workspaceRoot), '.kiro-sessions', threadId);
}
