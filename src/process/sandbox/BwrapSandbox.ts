import { mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { AgentSandbox, WrappableSpec } from './AgentSandbox.js';
import { bwrapArgs } from './bwrapArgs.js';
import { interpreterOf } from './interpreter.js';
import { locateAgentSync, type SandboxedPids } from './locateAgent.js';
import { executableDirs, planView, threadSessionStore } from './SandboxView.js';

/** kiro-cli's own state under HOME, bound read-write (kiro.dev docs, shared/kiro-acp.md; the README lists why). */
export const KIRO_HOME_PATHS = ['.kiro', '.local/share/kiro-cli', '.aws/sso'];
/** Of those, the ones created on the host when missing, so that a first login or setting survives the sandbox. */
const CREATE_IF_MISSING = ['.kiro', '.local/share/kiro-cli'];

export interface BwrapSandboxOptions {
  /** The bwrap executable, resolved. */
  readonly bwrap: string;
  /** WORKSPACE_ROOT: each thread's workspace lies in it, its kiro session store beside them. */
  readonly workspaceRoot: string;
  /** The bot's own paths: never visible to an agent. */
  readonly hidden: readonly string[];
  /** System paths to show read-only (default SandboxView's SYSTEM_PATHS). */
  readonly system?: readonly string[];
}

/**
 * Runs every agent in its own bubblewrap sandbox. `wrap` turns the agent's spawn spec into a bwrap spawn of the
 * same command (same environment, same cwd, both transports); `locate` finds, after the spawn, the host pid of the
 * agent itself and of the two bwrap processes around it.
 */
export class BwrapSandbox implements AgentSandbox {
  readonly name = 'bwrap';
  private readonly opts: BwrapSandboxOptions;

  constructor(options: BwrapSandboxOptions) {
    this.opts = options;
  }

  wrap<S extends WrappableSpec>(spec: S): S {
    const home = spec.env.HOME;
    const workspace = resolve(spec.cwd);
    const readWrite: string[] = [];
    const overlays: { src: string; dest: string }[] = [];
    if (home) {
      for (const rel of CREATE_IF_MISSING) mkdirSync(join(home, rel), { recursive: true, mode: 0o700 });
      for (const rel of KIRO_HOME_PATHS) readWrite.push(join(home, rel));
      // Each thread sees its own conversations only: kiro's session store is a per-thread directory.
      const store = threadSessionStore(this.opts.workspaceRoot, basename(workspace));
      mkdirSync(store, { recursive: true, mode: 0o700 });
      overlays.push({ src: store, dest: join(home, '.kiro', 'sessions', 'cli') });
    }
    const mounts = planView({
      workspace,
      home,
      readWrite,
      overlays,
      readOnly: executableDirs(spec.file, interpreterOf(spec.file, spec.env.PATH)),
      hidden: this.opts.hidden,
      tmpdir: spec.env.TMPDIR,
      ...(this.opts.system !== undefined && { system: this.opts.system }),
    });
    return {
      ...spec,
      file: this.opts.bwrap,
      args: bwrapArgs(mounts, { file: spec.file, args: spec.args, cwd: workspace, mode: spec.mode }),
    };
  }

  /** The agent's host pid (namespace pid 2) and the bwrap pids around it; undefined if bwrap exited first. */
  locate(outerPid: number): SandboxedPids | undefined {
    return locateAgentSync(outerPid);
  }
}
