import type { SandboxedPids } from './locateAgent.js';

/** What spawnAgent needs of a sandbox spec: the fields it rewrites; everything else passes through. */
export interface WrappableSpec {
  readonly file: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env: Readonly<Record<string, string>>;
  readonly mode: 'pty' | 'pipes';
}

/**
 * A mechanism that runs each agent isolated (bwrap today). `wrap` rewrites the spawn so the sandbox starts the
 * agent; `locate` finds, right after the spawn, the host pid of the agent itself and of the sandbox's own processes.
 */
export interface AgentSandbox {
  /** "bwrap": what /health, /pool-status and the session row show. */
  readonly name: string;
  wrap<S extends WrappableSpec>(spec: S): S;
  locate(outerPid: number): SandboxedPids | undefined;
}
