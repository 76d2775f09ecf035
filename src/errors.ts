/** Stable error codes; callers branch on `code`, never on message text. */
export type ThreadwardenErrorCode =
  | 'CONFIG_INVALID'
  | 'POOL_FULL'
  | 'SPAWN_FAILED'
  | 'SESSION_CLOSED'
  | 'INVALID_THREAD_ID'
  | 'UNSUPPORTED'
  | 'AGENT_ERROR';

export class ThreadwardenError extends Error {
  readonly code: ThreadwardenErrorCode;
  constructor(code: ThreadwardenErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** A configuration value failed validation; `variable` and `value` say which one. */
export class ConfigError extends ThreadwardenError {
  readonly issues: readonly { variable: string; value: string | undefined; expected: string }[];
  constructor(issues: readonly { variable: string; value: string | undefined; expected: string }[]) {
    super(
      'CONFIG_INVALID',
      issues
        .map(
          (i) =>
            `${i.variable}=${i.value === undefined ? '(unset)' : JSON.stringify(i.value)}: expected ${i.expected}`,
        )
        .join('\n'),
    );
    this.issues = issues;
  }
}

/** Every live session is busy; `retryAfterMs` is a hint for when one may be free. */
export class PoolFullError extends ThreadwardenError {
  readonly retryAfterMs: number;
  readonly maxSessions: number;
  constructor(maxSessions: number, retryAfterMs: number) {
    super(
      'POOL_FULL',
      `All ${maxSessions} agent sessions are busy. Try again in about ${Math.ceil(retryAfterMs / 1000)} s.`,
    );
    this.maxSessions = maxSessions;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The agent exited or failed before it reached its prompt; `output` holds its last lines for the user. */
export class SpawnFailedError extends ThreadwardenError {
  readonly output: string;
  constructor(message: string, output: string, options?: { cause?: unknown }) {
    super('SPAWN_FAILED', message, options);
    this.output = output;
  }
}

/**
 * A turn was sent to a session that has ended; `reason` says why it ended. `delivered` is false for a message that
 * was still queued and never reached the agent: re-send it to the thread's next session.
 */
export class SessionClosedError extends ThreadwardenError {
  readonly reason: string;
  readonly output: string;
  readonly delivered: boolean;
  constructor(reason: string, output = '', options: { delivered?: boolean } = {}) {
    super('SESSION_CLOSED', `The agent session has ended (${reason}).`);
    this.reason = reason;
    this.output = output;
    this.delivered = options.delivered ?? true;
  }
}
