import type { Mount } from './SandboxView.js';

export interface BwrapCommand {
  readonly file: string;
  readonly args: readonly string[];
  readonly cwd: string;
  /**
   * 'pipes' adds --new-session (the agent has no terminal to keep, and a new session shuts out TIOCSTI on ours);
   * 'pty' keeps the pty as the agent's controlling terminal, which the classic UI needs for /dev/tty.
   */
  readonly mode: 'pty' | 'pipes';
}

/**
 * Namespaces and process rules every sandbox gets. A PID namespace (the bot and other agents have no /proc entry and
 * no pid to signal; when the namespace's init dies the kernel kills every process in it) and an IPC namespace (no
 * System V shared memory between agents); no UTS or cgroup namespace, which hide nothing secret and cost spawn time.
 * The network is shared (kiro needs it). --die-with-parent: a dead bot
 * takes its sandboxes with it. --cap-drop ALL: a bot running as root must not hand root's capabilities to the agent
 * (bwrap keeps them for a privileged caller), and no_new_privs (bwrap always sets it) stops setuid binaries from
 * giving them back.
 */
const NAMESPACE_ARGS = [
  // A user namespace where one can be made: bwrap makes one itself for an unprivileged caller, but a bot running as
  // root in a container (no CAP_SYS_ADMIN) needs it asked for explicitly ("Creating new namespace failed" otherwise).
  '--unshare-user-try',
  '--unshare-pid',
  '--unshare-ipc',
  '--die-with-parent',
  '--cap-drop',
  'ALL',
];

function mountArgs(m: Mount): string[] {
  switch (m.kind) {
    case 'ro-bind':
      return ['--ro-bind', m.src, m.dest];
    case 'bind':
      return ['--bind', m.src, m.dest];
    case 'tmpfs':
      return ['--tmpfs', m.dest];
    case 'proc':
      return ['--proc', m.dest];
    case 'dev':
      return ['--dev', m.dest];
    case 'symlink':
      return ['--symlink', m.target, m.dest];
    case 'null-file':
      return ['--ro-bind', '/dev/null', m.dest];
  }
}

/** The bwrap arguments that run `command` inside `mounts`; the environment passes through bwrap unchanged. */
export function bwrapArgs(mounts: readonly Mount[], command: BwrapCommand): string[] {
  const args = [...NAMESPACE_ARGS];
  if (command.mode === 'pipes') args.push('--new-session');
  for (const m of mounts) args.push(...mountArgs(m));
  args.push('--chdir', command.cwd, '--', command.file, ...command.args);
  return args;
}
